# Sourced by bin/run: keeps a few long-running commands up.
#
#   supervise_add NAME COMMAND [ARGS...]   register a command (started by supervise_run)
#   supervise_run                          start them all and watch them until INT/TERM
#
# Each command runs in a process group of its own (setsid), so stopping it also stops
# what it forked (Celery's prefork pool, gunicorn's workers), and Ctrl-C in the terminal
# reaches only the supervisor, which then stops them in order. When a command dies the
# supervisor says which one and how (exit code or signal), clears what is left of its
# process group and starts it again after a backoff (1, 2, 4 ... seconds, at most
# SUPERVISE_BACKOFF_MAX); the others keep running meanwhile. More than
# SUPERVISE_MAX_RESTARTS restarts within SUPERVISE_WINDOW seconds is a restart storm:
# the supervisor gives up on that command and says so; it exits (status 1) once it has
# given up on every command. INT or TERM stops everything: TERM to each command, then
# SIGKILL to the process groups of those still running after SUPERVISE_STOP_TIMEOUT
# seconds; the supervisor then exits with status 0. Linux only (setsid, setpriv).
SUPERVISE_MAX_RESTARTS="${SUPERVISE_MAX_RESTARTS:-5}"
SUPERVISE_WINDOW="${SUPERVISE_WINDOW:-60}"
SUPERVISE_BACKOFF_MAX="${SUPERVISE_BACKOFF_MAX:-16}"
SUPERVISE_STOP_TIMEOUT="${SUPERVISE_STOP_TIMEOUT:-20}"
SUPERVISE_TICK="${SUPERVISE_TICK:-0.5}"

_sv_names=()              # in registration order
declare -A _sv_command    # name -> the command, shell-quoted
declare -A _sv_pid        # name -> pid (= its process group) while it runs
declare -A _sv_restart_at # name -> when (epoch seconds) to start it again
declare -A _sv_restarts   # name -> epoch seconds of its recent restarts
declare -A _sv_gave_up    # name -> 1 once given up on
_sv_ticker=""
_sv_stopping=""

_sv_say() { echo "==> [supervise] $*" >&2; }

supervise_add() {
  local name="$1"
  shift
  _sv_names+=("$name")
  _sv_command[$name]="$(printf '%q ' "$@")"
}

# If the supervisor itself is killed outright (SIGKILL: no trap runs), each command gets
# SIGTERM from the kernel (parent-death signal) instead of running on unsupervised.
_sv_pdeathsig=""
if setpriv --help 2>/dev/null | grep -q -- --pdeathsig; then _sv_pdeathsig="setpriv --pdeathsig TERM"; fi

_sv_start() {
  local name="$1"
  # setsid execs the command in place (a background job is no group leader), so $! is
  # the command itself, leader of its own process group and session.
  eval "setsid $_sv_pdeathsig ${_sv_command[$name]} &"
  _sv_pid[$name]=$!
  unset '_sv_restart_at[$name]'
  _sv_say "$name started (pid ${_sv_pid[$name]})"
}

_sv_alive() { kill -0 "$1" 2>/dev/null; }
# A group is alive while a member of it is not a zombie: a leader that has died stays
# in its group as a zombie until this shell reaps it, which it does at its own pace.
_sv_group_alive() {
  local pgid="$1" stat line fields
  kill -0 -- "-$pgid" 2>/dev/null || return 1
  for stat in /proc/[0-9]*/stat; do
    { read -r line < "$stat"; } 2>/dev/null || continue
    line="${line##*) }" # after "pid (comm) ": state ppid pgrp ...
    read -r -a fields <<< "$line"
    [ "${fields[2]}" = "$pgid" ] && [ "${fields[0]}" != "Z" ] && return 0
  done
  return 1
}

# _sv_group_clear PGID: stop what is left of a process group (children of a dead leader).
_sv_group_clear() {
  local pgid="$1" tries
  _sv_group_alive "$pgid" || return 0
  kill -TERM -- "-$pgid" 2>/dev/null || true
  for tries in 1 2 3 4 5 6 7 8 9 10; do
    _sv_group_alive "$pgid" || return 0
    sleep 0.2
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

_sv_describe_exit() {
  local rc="$1"
  if [ "$rc" -gt 128 ]; then
    echo "was killed by signal $((rc - 128)) (SIG$(kill -l "$((rc - 128))" 2>/dev/null || echo '?'))"
  else
    echo "exited with code $rc"
  fi
}

# _sv_died NAME: the command has ended; schedule its restart or give up on it.
_sv_died() {
  local name="$1" pid="${_sv_pid[$1]}" rc=0 now recent=() at
  wait "$pid" 2>/dev/null || rc=$?
  unset '_sv_pid[$name]'
  _sv_group_clear "$pid"
  now=$(date +%s)
  for at in ${_sv_restarts[$name]:-}; do
    [ $((now - at)) -lt "$SUPERVISE_WINDOW" ] && recent+=("$at")
  done
  if [ "${#recent[@]}" -ge "$SUPERVISE_MAX_RESTARTS" ]; then
    _sv_gave_up[$name]=1
    _sv_say "$name (pid $pid) $(_sv_describe_exit "$rc")"
    _sv_say "GIVING UP on $name: ${#recent[@]} restarts within ${SUPERVISE_WINDOW}s; the other processes keep running"
    return
  fi
  local delay=$((1 << ${#recent[@]}))
  [ "$delay" -gt "$SUPERVISE_BACKOFF_MAX" ] && delay="$SUPERVISE_BACKOFF_MAX"
  recent+=("$now")
  _sv_restarts[$name]="${recent[*]}"
  _sv_restart_at[$name]=$((now + delay))
  _sv_say "$name (pid $pid) $(_sv_describe_exit "$rc"); restarting in ${delay}s" \
    "(restart ${#recent[@]} of at most $SUPERVISE_MAX_RESTARTS within ${SUPERVISE_WINDOW}s)"
}

# _sv_stop_all: TERM to every command, SIGKILL to the process groups still there after
# SUPERVISE_STOP_TIMEOUT seconds, then reap them all.
_sv_stop_all() {
  trap '' INT TERM
  [ -n "$_sv_stopping" ] && return 0
  _sv_stopping=1
  local name pid waited=0 left
  [ -n "$_sv_ticker" ] && kill "$_sv_ticker" 2>/dev/null
  for name in "${_sv_names[@]}"; do
    pid="${_sv_pid[$name]:-}"
    [ -z "$pid" ] && continue
    _sv_say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
  done
  while :; do
    left=()
    for name in "${_sv_names[@]}"; do
      pid="${_sv_pid[$name]:-}"
      [ -n "$pid" ] && _sv_group_alive "$pid" && left+=("$name")
    done
    [ "${#left[@]}" -eq 0 ] && break
    if [ "$waited" -ge $((SUPERVISE_STOP_TIMEOUT * 5)) ]; then
      _sv_say "still running after ${SUPERVISE_STOP_TIMEOUT}s, killing: ${left[*]}"
      for name in "${left[@]}"; do kill -KILL -- "-${_sv_pid[$name]}" 2>/dev/null; done
      break
    fi
    # A leader that has ended leaves its stragglers: clear them now.
    for name in "${left[@]}"; do
      pid="${_sv_pid[$name]}"
      _sv_alive "$pid" || kill -TERM -- "-$pid" 2>/dev/null
    done
    sleep 0.2
    waited=$((waited + 1))
  done
  wait 2>/dev/null
  _sv_say "stopped"
}

supervise_run() {
  local name now running
  # A watchdog must not stop at its first failed test (bin/_env.sh sets -e).
  set +e
  trap '_sv_stop_all; exit 0' INT TERM
  trap '_sv_stop_all' EXIT
  for name in "${_sv_names[@]}"; do _sv_start "$name"; done
  while :; do
    now=$(date +%s)
    running=0
    for name in "${_sv_names[@]}"; do
      [ -n "${_sv_gave_up[$name]:-}" ] && continue
      running=$((running + 1))
      if [ -n "${_sv_pid[$name]:-}" ]; then
        _sv_alive "${_sv_pid[$name]}" || _sv_died "$name"
      elif [ "$now" -ge "${_sv_restart_at[$name]:-0}" ]; then
        _sv_start "$name"
      fi
    done
    if [ "$running" -eq 0 ]; then
      _sv_say "gave up on every process"
      trap - EXIT INT TERM
      _sv_stop_all
      return 1
    fi
    # Waiting on a background sleep (not a foreground one) lets INT/TERM in at once.
    sleep "$SUPERVISE_TICK" &
    _sv_ticker=$!
    wait "$_sv_ticker" 2>/dev/null || true
    _sv_ticker=""
  done
}
