"""import_compliance_list: CSV into the restricted or watch list, bad lines reported."""

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from compliance.models import RestrictedEntry, WatchEntry


def write(tmp_path, text: str, encoding: str = "utf-8"):
    path = tmp_path / "list.csv"
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_import_adds_good_lines_and_reports_bad_ones(tmp_path, middle_office, aapl, capsys):
    path = write(
        tmp_path,
        "symbol,issuer,reason,effective_from,effective_to\n"
        "AAPL,,Advisory mandate,,\n"
        ",Globex Corp,Inside information,2026-01-01T00:00:00+00:00,\n"
        "NOPE,,Unknown symbol,,\n"
        ",,No target,,\n"
        "AAPL,Apple Inc.,Both given,,\n"
        ",Initech,Bad date,yesterday,\n"
        ",Umbrella,,,\n",
    )

    call_command("import_compliance_list", path, "--user", "mo1")

    out, err = capsys.readouterr()
    assert "2 added to the restricted list, 5 rejected" in out
    assert [line.split(":")[0] for line in err.strip().splitlines()] == [
        "line 4",
        "line 5",
        "line 6",
        "line 7",
        "line 8",
    ]
    assert "symbol: Unknown symbol." in err and "reason: This field is required." in err
    assert sorted(RestrictedEntry.objects.values_list("issuer", flat=True)) == ["Apple Inc.", "Globex Corp"]
    assert set(RestrictedEntry.objects.values_list("added_by__username", flat=True)) == {"mo1"}
    assert AuditEvent.objects.filter(action="restrictedentry.added", actor="mo1").count() == 2


def test_import_into_the_watch_list(tmp_path, middle_office, aapl):
    call_command(
        "import_compliance_list", write(tmp_path, "symbol,reason\nAAPL,Rumours\n"), "--list", "watch", "--user", "mo1"
    )

    assert WatchEntry.objects.get().issuer == "Apple Inc."
    assert not RestrictedEntry.objects.exists()


@pytest.mark.parametrize(
    ("text", "encoding", "message"),
    [
        ("symbol,reason\nAAPL,caf\u00e9\n", "latin-1", "not UTF-8"),
        ("ticker,why\nAAPL,x\n", "utf-8", "needs a header"),
        (",,\n,,\n", "utf-8", "no valid lines"),
    ],
)
def test_import_refuses_bad_files_clearly(tmp_path, middle_office, aapl, text, encoding, message):
    if message == "no valid lines":
        text = "symbol,reason\nNOPE,x\n"
    with pytest.raises(CommandError, match=message):
        call_command("import_compliance_list", write(tmp_path, text, encoding), "--user", "mo1")
    assert not RestrictedEntry.objects.exists()


def test_import_needs_a_compliance_user(tmp_path, trader, aapl):
    with pytest.raises(CommandError, match="not a compliance"):
        call_command("import_compliance_list", write(tmp_path, "symbol,reason\nAAPL,x\n"), "--user", "trader1")
    with pytest.raises(CommandError, match="not a compliance"):
        call_command("import_compliance_list", write(tmp_path, "symbol,reason\nAAPL,x\n"), "--user", "nobody")
    assert not RestrictedEntry.objects.exists()
