# Sourced by bin/run and bin/test: a virtualenv in .venv with requirements.txt
# installed (re-installed only when requirements.txt changes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating virtualenv .venv"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.requirements.sha256"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing requirements"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"

# tcp_open HOST PORT: true if something listens there.
tcp_open() {
  python - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)
PY
}

# ensure_postgres / ensure_redis: start the machine's own server if it is down.
ensure_postgres() {
  tcp_open 127.0.0.1 5432 && return 0
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "==> starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 20); do tcp_open 127.0.0.1 5432 && return 0; sleep 0.5; done
  fi
  return 1
}
ensure_redis() {
  tcp_open 127.0.0.1 6379 && return 0
  if command -v redis-server >/dev/null 2>&1; then
    echo "==> starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
    for _ in $(seq 1 20); do tcp_open 127.0.0.1 6379 && return 0; sleep 0.5; done
  fi
  return 1
}

# ensure_chromium: the browser tests drive Debian's Chromium (Playwright's own browser
# download cannot work here); install it when missing and we are root.
ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing Chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || true
  fi
  [ -x /usr/bin/chromium ]
}
