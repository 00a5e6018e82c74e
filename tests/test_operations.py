"""Operator conveniences: the /healthz and /readyz probes, ``manage.py api_token``,
settings reading bin/run's ``var/run.env``, and bin/run's process supervisor."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.utils import timezone
from rest_framework.authtoken.models import Token

from audit.models import AuditEvent
from audit.services import audit_event_record, audit_seal
from routing.models import Venue, VenueSession

from ._running_oms import process_alive
from .factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------ probes
def _connected(venue: Venue, *, lease_seconds: float = 30, **fields) -> VenueSession:
    values = {
        "status": VenueSession.Status.CONNECTED,
        "holder": "worker@host",
        "lease_expires_at": timezone.now() + dt.timedelta(seconds=lease_seconds),
        "last_logon_at": timezone.now(),
        **fields,
    }
    return VenueSession.objects.create(venue=venue, **values)


def _all_sealed() -> None:
    while audit_seal():
        pass


def test_healthz_answers_without_sign_in_or_database(client):
    # No db fixture: any query would fail the test ("Database access not allowed").
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_probes_pass_a_login_required_middleware(client, db, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.contrib.auth.middleware.LoginRequiredMiddleware"]
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/orders/").status_code == 302  # the middleware is in force


def test_readyz_ok_when_database_broker_venues_and_sealing_are(client, venue):
    _connected(venue)
    _all_sealed()
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    checks = body["checks"]
    assert checks["database"]["status"] == "ok"
    assert checks["broker"] == {"status": "ok", "transport": "redis"}
    assert checks["venues"]["status"] == "ok"
    assert checks["venues"]["down"] == []
    [sim] = checks["venues"]["venues"]
    assert sim["code"] == "SIM" and sim["state"] == "up" and sim["session"] == "connected"
    assert sim["lease_live"] is True and sim["fatal"] is False and sim["stopped"] is False
    assert checks["audit_sealing"]["status"] == "ok"
    assert checks["audit_sealing"]["unsealed_events"] == 0
    assert checks["audit_sealing"]["lag_seconds"] == 0


def test_readyz_is_503_when_the_database_is_down_and_says_no_more(client, venue):
    broken = mock.Mock(vendor="postgresql")
    broken.cursor.side_effect = OperationalError('connection to "db.internal" failed: password=hunter2')
    with mock.patch("oms_site.health.connection", broken):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {"status": "down", "error": "OperationalError"}
    assert body["checks"]["broker"]["status"] == "ok"
    assert body["checks"]["venues"] == {"status": "skipped", "reason": "database down"}
    assert body["checks"]["audit_sealing"]["status"] == "skipped"
    assert b"hunter2" not in response.content and b"db.internal" not in response.content


def test_readyz_is_503_when_the_broker_is_down(client, venue, settings):
    _connected(venue)
    settings.CELERY_BROKER_URL = "redis://:s3cret@127.0.0.1:1/0"  # nothing listens on port 1
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 10
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"]["status"] == "down"
    assert body["checks"]["broker"]["transport"] == "redis"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["venues"]["status"] == "ok"  # still reported
    assert b"s3cret" not in response.content and b"127.0.0.1" not in response.content


def test_readyz_checks_the_filesystem_brokers_folder(client, db, settings, tmp_path):
    folder = tmp_path / "queue"
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == {"status": "down", "transport": "filesystem"}
    assert str(tmp_path).encode() not in response.content

    folder.mkdir()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == {"status": "ok", "transport": "filesystem"}


def test_a_venue_down_makes_readyz_degraded_not_unavailable(client, venue):
    _connected(venue)
    other = Venue.objects.create(code="XNYS", name="NYSE broker", sender_comp_id="OMS", target_comp_id="NYSE")
    _connected(
        other,
        status=VenueSession.Status.DISCONNECTED,
        fatal=True,
        last_error="Logon rejected by 10.1.2.3: bad password s3cret",
        last_error_at=timezone.now(),
        unavailable_since=timezone.now(),
    )
    Venue.objects.create(code="OFF", enabled=False)  # disabled venues are not checked
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    venues = body["checks"]["venues"]
    assert venues["status"] == "degraded"
    assert venues["down"] == ["XNYS"]
    by_code = {entry["code"]: entry for entry in venues["venues"]}
    assert set(by_code) == {"SIM", "XNYS"}
    assert by_code["SIM"]["state"] == "up"
    down = by_code["XNYS"]
    assert down["state"] == "down" and down["session"] == "disconnected" and down["fatal"] is True
    assert down["last_error_at"] is not None
    assert b"s3cret" not in response.content and b"10.1.2.3" not in response.content


def test_a_venue_whose_lease_ran_out_or_never_hosted_is_down(client, venue):
    _connected(venue, lease_seconds=-5)  # the holder died while logged on
    Venue.objects.create(code="NEW", sender_comp_id="OMS", target_comp_id="NEW")
    body = client.get("/readyz").json()
    by_code = {entry["code"]: entry for entry in body["checks"]["venues"]["venues"]}
    assert by_code["SIM"]["state"] == "down" and by_code["SIM"]["lease_live"] is False
    assert by_code["NEW"] == {"code": "NEW", "state": "not_hosted"}
    assert body["checks"]["venues"]["down"] == ["NEW", "SIM"]
    assert body["status"] == "degraded"


def test_a_venue_closed_by_its_schedule_is_not_a_fault(client, venue):
    now = timezone.now()
    closed_hour = (now + dt.timedelta(hours=2)).time().replace(minute=0, second=0, microsecond=0)
    venue.session_start = closed_hour
    venue.session_end = (now + dt.timedelta(hours=3)).time().replace(minute=0, second=0, microsecond=0)
    venue.trading_days = "Mon-Sun"
    venue.save()
    _all_sealed()
    body = client.get("/readyz").json()
    [sim] = body["checks"]["venues"]["venues"]
    assert sim["state"] == "closed"
    assert body["status"] == "ok"


def test_readyz_reports_the_audit_sealing_lag(client, db):
    _all_sealed()
    audit_event_record(actor="system", action="probe.test", object_type="probe", object_id="1")
    body = client.get("/readyz").json()
    sealing = body["checks"]["audit_sealing"]
    assert sealing["status"] == "ok"
    assert sealing["unsealed_events"] == 1
    assert 0 <= sealing["lag_seconds"] < 60
    head = sealing["head_seq"]

    _all_sealed()
    audit_event_record(
        actor="system",
        action="probe.test",
        object_type="probe",
        object_id="2",
        occurred_at=timezone.now() - dt.timedelta(minutes=5),
    )
    body = client.get("/readyz").json()
    sealing = body["checks"]["audit_sealing"]
    assert body["status"] == "degraded"
    assert sealing["status"] == "degraded"
    assert sealing["head_seq"] == head + 1
    assert sealing["unsealed_events"] == 1
    assert sealing["lag_seconds"] >= 300


def test_probes_are_not_in_the_api_schema(client, trader):
    client.force_login(trader)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").content
    assert b"/api/v1/orders/" in schema
    assert b"healthz" not in schema and b"readyz" not in schema


# ------------------------------------------------------------------------ api_token
def _api_token(*args: str) -> str:
    out = io.StringIO()
    call_command("api_token", *args, stdout=out)
    return out.getvalue()


def test_api_token_prints_only_the_token_and_the_same_one_twice(db):
    user = UserFactory(username="trader1")
    first = _api_token("trader1")
    assert first == Token.objects.get(user=user).key + "\n"
    assert len(first.strip()) == 40 and first.strip().isalnum()
    assert _api_token("trader1") == first
    created = AuditEvent.objects.filter(action="auth.token_created", object_id="trader1")
    assert created.count() == 1
    assert created.get().actor == "system:api_token"
    assert first.strip() not in json.dumps([created.get().before, created.get().after, created.get().details])


def test_api_token_rotate_replaces_the_token(db):
    user = UserFactory(username="trader1")
    old = _api_token("trader1").strip()
    new = _api_token("trader1", "--rotate").strip()
    assert new != old
    assert list(Token.objects.filter(user=user).values_list("key", flat=True)) == [new]
    assert AuditEvent.objects.filter(action="auth.token_rotated", object_id="trader1").count() == 1


def test_api_token_refuses_unknown_and_inactive_users(db):
    with pytest.raises(CommandError, match="no user 'nobody'"):
        _api_token("nobody")
    UserFactory(username="gone", is_active=False)
    with pytest.raises(CommandError, match="user 'gone' is inactive"):
        _api_token("gone")
    assert not Token.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="auth.token").exists()


def test_the_token_authenticates_the_api(client, trader):
    key = _api_token("trader1").strip()
    response = client.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200


# ------------------------------------------------------------------------ var/run.env
SHOW_SETTINGS = (
    "import json, django; from django.conf import settings; django.setup(); "
    "db = settings.DATABASES['default']; "
    "print(json.dumps([db['ENGINE'].rsplit('.', 1)[1], str(db['NAME']), settings.CELERY_BROKER_URL]))"
)


def _settings_seen(var_dir: Path, *, prelude: str = "", **env: str) -> list[str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DATABASE_URL", "CELERY_BROKER_URL", "OMS_VAR_DIR", "DJANGO_SETTINGS_MODULE")
    }
    environment.update(DJANGO_SETTINGS_MODULE="oms_site.settings", OMS_VAR_DIR=str(var_dir), **env)
    result = subprocess.run(
        [sys.executable, "-c", prelude + SHOW_SETTINGS],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_settings_take_the_database_and_broker_bin_run_chose(tmp_path):
    assert _settings_seen(tmp_path) == ["sqlite3", str(tmp_path / "oms.sqlite3"), "filesystem://"]

    (tmp_path / "run.env").write_text(
        "# written by bin/run\n"
        "DATABASE_URL=postgres://postgres@127.0.0.1:5432/oms_from_run_env\n"
        "CELERY_BROKER_URL=redis://127.0.0.1:6379/7\n"
        "SECRET_KEY=not-taken-from-this-file\n"
        "garbage line\n"
    )
    assert _settings_seen(tmp_path) == ["postgresql", "oms_from_run_env", "redis://127.0.0.1:6379/7"]


def test_the_environment_wins_over_run_env(tmp_path):
    (tmp_path / "run.env").write_text(
        "DATABASE_URL=postgres://postgres@127.0.0.1:5432/oms_from_run_env\nCELERY_BROKER_URL=redis://127.0.0.1:6379/7\n"
    )
    seen = _settings_seen(
        tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/oms_from_env", CELERY_BROKER_URL="memory://"
    )
    assert seen == ["postgresql", "oms_from_env", "memory://"]
    seen = _settings_seen(tmp_path, CELERY_BROKER_URL="memory://")
    assert seen == ["postgresql", "oms_from_run_env", "memory://"]


def test_a_pytest_run_never_reads_run_env(tmp_path):
    (tmp_path / "run.env").write_text("DATABASE_URL=postgres://postgres@127.0.0.1:5432/oms_from_run_env\n")
    seen = _settings_seen(tmp_path, prelude="import pytest; ")
    assert seen == ["sqlite3", str(tmp_path / "oms.sqlite3"), "filesystem://"]


# ------------------------------------------------------------------------ supervisor
SUPERVISED = """
set -euo pipefail
source "$ROOT/bin/_supervise.sh"
supervise_add steady bash -c 'sleep 300 & echo $! >> "$PIDS"; sleep 300 & echo $! >> "$PIDS"; echo $$ >> "$PIDS"; wait'
supervise_add flaky bash -c 'exit 3'
supervise_add stubborn bash -c 'trap "" TERM; echo $$ > "$PIDS.stubborn"; while :; do sleep 0.1; done'
supervise_run
"""


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def _supervisor(tmp_path: Path, script: str, **env: str) -> tuple[subprocess.Popen, Path, Path]:
    log, pids = tmp_path / "supervise.log", tmp_path / "pids"
    environment = {
        **os.environ,
        "ROOT": str(ROOT),
        "PIDS": str(pids),
        "SUPERVISE_TICK": "0.1",
        "SUPERVISE_STOP_TIMEOUT": "2",
        **env,
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", script], env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process, log, pids


def test_the_supervisor_restarts_a_dead_process_gives_up_on_a_storm_and_stops_everything(tmp_path):
    process, log, pids = _supervisor(tmp_path, SUPERVISED, SUPERVISE_MAX_RESTARTS="2", SUPERVISE_WINDOW="60")
    try:
        _wait_for(lambda: "GIVING UP on flaky" in log.read_text(), 20, "the supervisor to give up on flaky")
        text = log.read_text()
        assert "flaky (pid" in text and "exited with code 3; restarting in 1s (restart 1 of at most 2" in text
        assert "exited with code 3; restarting in 2s (restart 2 of at most 2" in text
        assert process.poll() is None  # the others keep running
        _wait_for(lambda: len(_pids(pids)) == 3, 10, "steady to start")
        first = _pids(pids)
        steady_leader = first[2]
        [stubborn] = _pids(tmp_path / "pids.stubborn")

        os.kill(steady_leader, signal.SIGKILL)  # its two sleeps are left in its process group
        _wait_for(lambda: len(_pids(pids)) == 6, 10, "steady to be started again")
        text = log.read_text()
        assert f"steady (pid {steady_leader}) was killed by signal 9 (SIGKILL); restarting in 1s" in text
        assert not any(process_alive(pid) for pid in first[:3]), "the dead leader's children were not cleared"

        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(15) == 0
        text = log.read_text()
        assert "still running after 2s, killing: stubborn" in text
        assert text.rstrip().endswith("==> [supervise] stopped")
        left = [pid for pid in [*_pids(pids), stubborn] if process_alive(pid)]
        assert left == [], f"left running: {left}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in [*_pids(pids), *_pids(tmp_path / "pids.stubborn")]:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_supervisor_stops_on_term_and_exits_1_when_it_gave_up_on_everything(tmp_path):
    script = 'source "$ROOT/bin/_supervise.sh"; supervise_add broken bash -c "exit 7"; supervise_run'
    process, log, _ = _supervisor(tmp_path, script, SUPERVISE_MAX_RESTARTS="0")
    assert process.wait(15) == 1
    text = log.read_text()
    assert "broken (pid" in text and "exited with code 7" in text
    assert "GIVING UP on broken" in text and "gave up on every process" in text

    script = 'source "$ROOT/bin/_supervise.sh"; supervise_add steady sleep 300; supervise_run'
    process, log, _ = _supervisor(tmp_path, script)
    _wait_for(lambda: "steady started" in log.read_text(), 10, "steady to start")
    sleeper = int(log.read_text().split("steady started (pid ")[1].split(")")[0])
    process.terminate()
    assert process.wait(15) == 0
    assert not process_alive(sleeper)
