"""Rule settings: which rule applies, how strictly, at which scope."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.utils.html import format_html, format_html_join

from oms_site.roles import TRADER_GROUP

from ..models import RULE_PARAMETERS, RuleSetting
from ._common import ConsoleAdmin


def _rule_help() -> str:
    return format_html(
        "What each rule reads from its setting:<ul>{}</ul>",
        format_html_join("", "<li><b>{}</b>: {}</li>", ((rule.label, text) for rule, text in RULE_PARAMETERS.items())),
    )


class RuleSettingForm(forms.ModelForm):
    class Meta:
        model = RuleSetting
        fields = [
            "rule",
            "scope",
            "account",
            "trader",
            "security",
            "issuer",
            "enabled",
            "severity",
            "threshold",
            "window_seconds",
            "note",
        ]
        help_texts = {
            "scope": "The most specific scope with a setting decides: security > issuer > account > trader > firm.",
            "account": "Only for scope account.",
            "trader": "Only for scope trader.",
            "security": "Only for scope security.",
            "issuer": "Only for scope issuer.",
            "enabled": "A disabled setting switches the rule off for its scope.",
            "severity": "Warn holds the order for an override; block rejects it.",
            "threshold": "See the rule's parameters above; inclusive (at the limit passes).",
            "window_seconds": "See the rule's parameters above.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rule"].help_text = _rule_help()


@admin.register(RuleSetting)
class RuleSettingAdmin(ConsoleAdmin):
    form = RuleSettingForm
    list_display = [
        "rule",
        "target",
        "enabled",
        "severity",
        "threshold",
        "window_seconds",
        "updated_by",
        "updated_at",
    ]
    list_filter = ["rule", "scope", "enabled", "severity"]
    list_select_related = ["account", "trader", "security", "updated_by"]
    search_fields = ["issuer", "security__symbol", "account__code", "trader__username"]
    autocomplete_fields = ["account", "security"]
    readonly_fields = ["updated_by", "updated_at"]

    @admin.display(description="target", ordering="scope")
    def target(self, obj):
        return obj.target_label

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "trader":
            kwargs["queryset"] = get_user_model().objects.filter(groups__name=TRADER_GROUP).order_by("username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
