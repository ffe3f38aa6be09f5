#!/usr/bin/env bash
# Install Corridor into ./.venv, create ./corridor-data on the first run, and serve on
# 127.0.0.1:7740 in the foreground. Safe to run again: an existing data dir is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${CORRIDOR_DATA:-corridor-data}"
ORG="${CORRIDOR_ORG:-My Company}"
if [ ! -x .venv/bin/corridor ]; then
    echo "Installing Corridor into .venv …"
    python3 -m venv .venv
    .venv/bin/pip install -q -e .
fi
if [ ! -f "$DATA/corridor.toml" ]; then
    .venv/bin/corridor init "$DATA" --org "$ORG"
    echo
fi
echo "Connect:  . .venv/bin/activate; corridor admin --data $DATA user add alice --name \"Alice\"  (prints an invite)"
echo "          corridor enroll '<invite>' --password-stdin; corridor send bob \"hello\""
echo
exec .venv/bin/corridor serve "$DATA"
