#!/usr/bin/env bash
# smartcam installer: makes .venv with the app (and, with --dev, the test dependencies).
# Usage: ./install.sh [--dev] [--help]
set -euo pipefail
cd "$(dirname "$0")"

DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    -h|--help) sed -n '2,3p' "$0" | sed 's/^# //'; exit 0 ;;
    *) echo "install.sh: unknown option $arg (see ./install.sh --help)" >&2; exit 2 ;;
  esac
done

step() { printf '==> %s\n' "$*"; }
fail() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || fail "no $PYTHON: sudo apt install python3 python3-venv"

step "virtual environment .venv"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv || fail "cannot make a venv: sudo apt install python3-venv"
fi

step "smartcam and its dependencies into .venv"
extras=""
[ "$DEV" = 1 ] && extras="[dev]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$extras" \
  || fail "pip could not install the dependencies (see above); check the network and run ./install.sh again"

step "check: the app imports and finds a TFLite runtime"
.venv/bin/python -c "from app.runtime import interpreter_api; print('    runtime:', interpreter_api().package)"
echo "done: .venv/bin/python -m app --pipeline detect"
