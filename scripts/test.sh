#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), then runs the whole test suite in the one release
# profile. Dependencies are compiled into CARGO_TARGET_DIR (default: outside the clone, under
# ~/.cache), so later runs and other checkouts reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cellscope-target}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
cargo test --release "$@"
