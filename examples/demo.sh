#!/usr/bin/env bash
# The main job on the bundled tiny example; $1 is the venv's bin directory.
set -euo pipefail
BIN=${1:-.venv/bin}
cd "$(dirname "$0")/.."
"$BIN/ckptkit" --help
