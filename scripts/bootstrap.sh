#!/usr/bin/env bash
# Set up everything multialpha needs on a fresh Debian machine with Python
# 3.11: redis-server and tmux (apt, if missing), a virtualenv in .venv, the package
# and its plugins (editable), and the test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

# redis-server: the bus (and every test's real Redis); redis-sentinel: Redis failover (and the
# failover tests' three sentinels); tmux: the status view's terminal tests.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]} from apt"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The Debian packages start a system redis on 6379 (and a sentinel on 26379); multialpha never
# relies on them.

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.multialpha-installed"
shopt -s nullglob
inputs=$(cat pyproject.toml plugins/*/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$inputs" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  args=(-e ".[test]")
  for p in plugins/*/; do
    [ -f "$p/pyproject.toml" ] && args+=(-e "$p")
  done
  "$VENV/bin/pip" install -q "${args[@]}"
  echo "$inputs" > "$stamp"
fi
