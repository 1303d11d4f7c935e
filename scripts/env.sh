# Sourced by run.sh and test.sh: installs what is missing (setup.sh) and sets the build's
# environment (a target directory shared between checkouts; a runtime dir for Mesa's Vulkan WSI,
# which otherwise prints an error per device probe).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cellscope-target}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
