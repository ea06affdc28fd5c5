#!/usr/bin/env bash
# Run the test suite (the same command CI runs). Extra arguments go to pytest, e.g. scripts/test.sh -k node
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PYTHONUNBUFFERED=1
# test/ by default (setup.cfg testpaths); test files given as arguments replace it
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
