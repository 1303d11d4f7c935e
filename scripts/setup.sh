#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build, run and test cellscope: the system
# packages (HDF5, a software Vulkan driver for machines without a GPU, X11 bits for the window,
# fontconfig, Xvfb for the window test) and Python anndata + h5py for the checks that read our
# output back in Python. Installs nothing that is already there; safe to run again.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
need=()
for p in libhdf5-dev pkg-config mesa-vulkan-drivers xvfb xauth libfontconfig1-dev libxkbcommon-x11-0 python3-pip; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
# python3-pip only when no pip is there (pyenv and venvs bring their own).
if python3 -m pip --version >/dev/null 2>&1; then
  need=("${need[@]/python3-pip/}")
fi
need=($(printf '%s\n' "${need[@]}" | grep -v '^$' || true))
if [ ${#need[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}"
fi

# Python anndata for the write-back round-trip checks (light; no torch).
python3 -c "import anndata, h5py" 2>/dev/null \
  || python3 -m pip install -q anndata h5py \
  || python3 -m pip install -q --user --break-system-packages anndata h5py

