#!/usr/bin/env bash
# smartcam installer: makes .venv with the app and fetches the pipelines' models.
# Usage: ./install.sh [--dev] [--models-from DIR] [--no-models] [--help]
#   --dev              add the test dependencies (tests use ../shared/models, so no models are fetched)
#   --models-from DIR  offline: take the models from DIR (a folder holding the files under their names)
#   --no-models        skip fetching models
set -euo pipefail
cd "$(dirname "$0")"

DEV=0
MODELS=pull
MODELS_FROM=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) DEV=1 ;;
    --models-from) MODELS_FROM=${2:?--models-from needs a folder}; shift ;;
    --no-models) MODELS=skip ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# //'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see ./install.sh --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$DEV" = 1 ] && [ -z "$MODELS_FROM" ] && MODELS=skip

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
if [ "$MODELS" = pull ]; then
  step "models for the shipped pipelines${MODELS_FROM:+ from $MODELS_FROM}"
  .venv/bin/python -m app models pull ${MODELS_FROM:+--from "$MODELS_FROM"} \
    || fail "models could not be fetched (above); offline, use ./install.sh --models-from DIR"
else
  step "models: skipped (python -m app models pull fetches them)"
fi
echo "done: .venv/bin/python -m app --pipeline detect"
