"""The basket upload form: the CSV pasted or uploaded, the client basket id that makes
its submission idempotent, and a name."""

from __future__ import annotations

import hashlib
import secrets

from django import forms

from .basket_csv import HEADER_EXAMPLE, MAX_BYTES, NotText, basket_text_decode

# Line n's client order id is f"{basket id}-{n}", at most 64 characters for n up to
# BASKET_MAX_LINES (5000): the basket id leaves room for "-5000".
BASKET_ID_MAX = 58


def new_client_basket_id() -> str:
    """Each new basket form gets its own id, so submitting it twice creates one basket."""
    return f"BASKET-{secrets.token_hex(6).upper()}"


def basket_text_digest(text: str) -> str:
    """What the Check saw: a submit of other text is checked again, not submitted."""
    return hashlib.sha256(text.encode()).hexdigest()


class BasketUploadForm(forms.Form):
    client_basket_id = forms.CharField(
        label="Basket id",
        max_length=BASKET_ID_MAX,
        help_text="Submitting the same basket id again does not create a second basket.",
    )
    name = forms.CharField(label="Name", max_length=200, required=False)
    csv_text = forms.CharField(
        label="Orders (CSV)",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false", "wrap": "off", "placeholder": HEADER_EXAMPLE}),
        help_text=f"A header row ({HEADER_EXAMPLE}, and venue if you choose one), then one order a line.",
    )
    csv_file = forms.FileField(label="Or upload a CSV file", required=False)
    checked = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_client_basket_id(self) -> str:
        value = self.cleaned_data["client_basket_id"].strip()
        if not value.isprintable():
            raise forms.ValidationError("Printable characters only.")
        return value

    def clean(self):
        data = super().clean()
        upload = data.get("csv_file")
        if upload:
            if upload.size > MAX_BYTES:
                self.add_error("csv_file", f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB.")
                return data
            try:
                data["csv_text"] = basket_text_decode(upload.read())
            except NotText as exc:
                self.add_error("csv_file", str(exc))
                return data
        else:
            data["csv_text"] = (data.get("csv_text") or "").removeprefix("\ufeff")
        if not data["csv_text"].strip():
            self.add_error("csv_text", "Paste the orders, or choose a CSV file.")
        return data

    def with_text(self, text: str, *, checked: str = "") -> BasketUploadForm:
        """The form again showing ``text`` in the text box (an upload's text, so the
        trader fixes it there) and what was checked."""
        data = self.data.copy()
        data["csv_text"] = text
        data["checked"] = checked
        form = BasketUploadForm(data, label_suffix="")
        form.is_valid()
        for name, errors in self.errors.items():
            for error in errors:
                if error not in form.errors.get(name, []):
                    form.add_error(None if name == "__all__" else name, error)
        return form
