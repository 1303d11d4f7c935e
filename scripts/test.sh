#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), then runs the whole test suite in the one release
# profile; extra arguments go to `cargo test`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cargo test --release "$@"
