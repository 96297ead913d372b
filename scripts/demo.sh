#!/usr/bin/env bash
# The main job on its built-in default: train EDSR and MS3EDSR on a small ×2 set, test both, print a table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m msconv_plugin.demo "$@"
