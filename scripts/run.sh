#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), then opens the window: on the embedded default
# dataset, or on the path given (`scripts/run.sh PATH`), or runs a subcommand
# (`scripts/run.sh inspect PATH`).
set -euo pipefail
source "$(dirname "$0")/env.sh"
exec cargo run --release -- "$@"
