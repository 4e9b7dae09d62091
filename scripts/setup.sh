#!/usr/bin/env bash
# Installs every Debian 12 package quantfork needs to build, test and benchmark.
# Idempotent: packages already present are left alone. Run as root (or with sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git clang libclang-rt-14-dev
  libtorch-dev libdnnl-dev libgloo-dev libopenblas0-pthread libopenblas-pthread-dev
  libyaml-cpp-dev libspdlog-dev libfmt-dev libhdf5-dev libgtest-dev libgmock-dev
  libboost-math-dev nlohmann-json3-dev zlib1g-dev libpcre2-dev libutf8proc-dev libzstd-dev
  gnuplot-nox fortunes python3 python3-torch python3-numpy python3-h5py
  libprotobuf-dev protobuf-compiler python3-protobuf
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
