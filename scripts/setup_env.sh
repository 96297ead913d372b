#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install the plugin into it.
# torch/torchvision are pinned to a pair that imports on machines without a GPU (see README, "Installing").
# Re-runs are quick: nothing is reinstalled unless setup.py or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
stamp="$VENV/.installed-$(cat setup.py scripts/setup_env.sh | sha256sum | cut -c1-16)"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ]; then
  echo "[setup] installing torch==2.14.1, torchvision==0.29.1, the plugin and its test tools (a few minutes)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet torch==2.14.1 torchvision==0.29.1
  "$VENV/bin/python" -m pip install --quiet -e '.[test]'
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
