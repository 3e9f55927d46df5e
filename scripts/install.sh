#!/usr/bin/env bash
# Install napari-sbtt with its test tools on a fresh Debian/Ubuntu machine (run as root or with sudo).
# - system packages napari's canvas needs under a virtual display (Xvfb, Mesa, Qt's xcb libraries)
# - PyTorch 2.13 when no torch is installed, from the configured index or TORCH_INDEX_URL (PyPI on
#   Linux serves the CUDA build: TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu gets the CPU
#   wheel); bring your own CUDA build on a GPU machine
# - napari-sbtt in editable mode with the testing and baseline extras (Qt 6 through PyQt6; the tests
#   select it even where PyQt5 is installed too)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(xvfb xauth libgl1-mesa-dri libglx-mesa0 libegl1 libxkbcommon-x11-0 libxcb-icccm4
  libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0
  libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  # TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu): where to take the wheel from, for
  # an index that would otherwise serve the CUDA build (PyPI on Linux)
  "$PY" -m pip install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0"
fi
"$PY" -m pip install -q -e ".[testing,baselines]"
