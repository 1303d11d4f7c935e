#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), then opens the window: on the embedded default
# dataset, or on the paths given (`scripts/run.sh PATH`), or runs a subcommand
# (`scripts/run.sh inspect PATH`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cellscope-target}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
exec cargo run --release -- "$@"
