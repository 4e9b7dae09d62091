#!/usr/bin/env bash
# Builds quantfork with CUDA (QF_CUDA=ON) into build/gpu, against the CUDA libtorch inside
# the pip PyTorch that python3 imports (or the libtorch under $Torch_DIR). The Debian
# libraries quantfork needs (yaml-cpp, spdlog, HDF5, ...) are either installed
# (scripts/setup.sh) or taken from .deb files, which need no root and no network:
#   QF_DEBS=build/debs scripts/build-gpu.sh [CMAKE_ARGS...]
# env:
#   QF_DEBS       folder of .deb files from scripts/fetch-debs.sh; unpacked (dpkg -x) into
#                 QF_DEB_ROOT first (again only when the set of files changes)
#   QF_DEB_ROOT   the unpacked packages (default build/deb-root, used when QF_DEBS made it)
#   QF_BUILD_DIR  (build/gpu)   QF_JOBS (nproc)   QF_PYTHON3 (python3)
#   QF_TARGETS    targets to build, space-separated (default: all)
#   TORCH_CUDA_ARCH_LIST  (the first GPU's compute capability, else 9.0: H100/H200)
#   QF_GPU_CXXFLAGS       extra compiler flags (default: newer GCC warnings that gcc 12,
#                         which CI runs with -Werror, doesn't have stay warnings here)
# The binaries carry the library folder in their RPATH, so they run without
# LD_LIBRARY_PATH: build/gpu/cli/quantfork, the tests, the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${QF_PYTHON3:-python3}
dir=${QF_BUILD_DIR:-build/gpu}
die() { echo "build-gpu: $*" >&2; exit 2; }

# libtorch --------------------------------------------------------------------
if [ -n "${Torch_DIR:-}" ]; then
  torch_args=(-DTorch_DIR="$Torch_DIR")
  echo "build-gpu: libtorch from Torch_DIR=$Torch_DIR"
else
  "$python" -c 'import torch' 2>/dev/null || die "$python cannot import torch (set QF_PYTHON3 or Torch_DIR)"
  read -r torch_prefix torch_version torch_cuda cxx11_abi < <("$python" -c '
import torch, torch.utils
print(torch.utils.cmake_prefix_path, torch.__version__, torch.version.cuda, int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  [ "$torch_cuda" != None ] || die "torch $torch_version has no CUDA: install a CUDA build of PyTorch"
  # Debian's libraries use the C++11 std::string ABI; PyTorch wheels before 2.7 did not,
  # and mixing the two fails at link time on every std::string in an interface.
  [ "$cxx11_abi" = 1 ] || die "torch $torch_version uses the pre-C++11 ABI; Debian's libraries need a PyTorch >= 2.7 wheel (or a cxx11-abi libtorch via Torch_DIR)"
  torch_args=(-DTorch_DIR="$torch_prefix/Torch")
  echo "build-gpu: libtorch from torch $torch_version (CUDA $torch_cuda) at $torch_prefix"
fi

# CUDA toolkit: libtorch's CMake files look for nvcc and the CUDA headers.
if ! command -v nvcc >/dev/null; then
  for d in "${CUDA_HOME:-}" /usr/local/cuda; do
    [ -n "$d" ] && [ -x "$d/bin/nvcc" ] && export PATH="$d/bin:$PATH" && break
  done
fi
command -v nvcc >/dev/null || die "no nvcc on PATH, in \$CUDA_HOME or /usr/local/cuda"
cuda_home=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
echo "build-gpu: $(nvcc --version | tail -n 2 | head -n 1) at $cuda_home"
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 || true)
  export TORCH_CUDA_ARCH_LIST=${cap:-9.0}
fi
extra=()
# CUDA 12.9 dropped the old NVTX library that libtorch's CMake files fall back to when
# they don't find the NVTX3 headers; point them at the toolkit's.
for inc in "$cuda_home/include" "$cuda_home/targets/x86_64-linux/include"; do
  [ -d "$inc/nvtx3" ] && extra+=(-Dnvtx3_dir="$inc") && break
done

# Debian libraries from .deb files --------------------------------------------
root=${QF_DEB_ROOT:-build/deb-root}
if [ -n "${QF_DEBS:-}" ]; then
  compgen -G "$QF_DEBS/*.deb" >/dev/null || die "no .deb files in QF_DEBS=$QF_DEBS"
  if [ -f "$QF_DEBS/MANIFEST" ]; then
    need=$(sed -n 's/^glibc_min=//p' "$QF_DEBS/MANIFEST")
    have=$(getconf GNU_LIBC_VERSION | awk '{ print $2 }')
    [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n 1)" = "$need" ] ||
      die "the packages in $QF_DEBS need glibc >= $need; this machine has $have"
  fi
  stamp=$(find "$QF_DEBS" -maxdepth 1 -name '*.deb' -printf '%f %s\n' | sort | sha256sum | cut -c1-16)
  if [ "$(cat "$root/.qf-debs" 2>/dev/null)" != "$stamp" ]; then
    echo "build-gpu: unpacking $(find "$QF_DEBS" -maxdepth 1 -name '*.deb' | wc -l) packages from $QF_DEBS into $root"
    rm -rf "$root"
    mkdir -p "$root"
    for deb in "$QF_DEBS"/*.deb; do
      if command -v dpkg-deb >/dev/null; then
        dpkg-deb -x "$deb" "$root"
      else  # a .deb is an ar archive holding data.tar.{xz,zst,gz}; GNU tar finds which
        member=$(ar t "$deb" | grep '^data\.tar')
        ar p "$deb" "$member" >"$root/.data.tar"
        tar -xf "$root/.data.tar" -C "$root"
        rm "$root/.data.tar"
      fi
    done
    echo "$stamp" >"$root/.qf-debs"
  fi
fi
[ -z "${QF_DEB_ROOT:-}" ] || [ -d "$root/usr/lib/x86_64-linux-gnu" ] ||
  die "QF_DEB_ROOT=$QF_DEB_ROOT holds no unpacked packages (set QF_DEBS to unpack them)"
prefix_path="${torch_prefix:-}"
if [ -f "$root/.qf-debs" ] || [ -n "${QF_DEB_ROOT:-}" ]; then
  root=$(readlink -f "$root")
  libdir="$root/usr/lib/x86_64-linux-gnu"
  echo "build-gpu: Debian libraries from $root"
  prefix_path="$prefix_path;$root/usr"
  # pkg-config (pcre2, utf8proc, zstd) reads only the unpacked .pc files, whose /usr paths
  # it prefixes with the root; the unpacked pkgconf serves when the machine has none.
  export PKG_CONFIG_LIBDIR="$libdir/pkgconfig:$root/usr/share/pkgconfig"
  export PKG_CONFIG_PATH="" PKG_CONFIG_SYSROOT_DIR="$root"
  if ! command -v pkg-config >/dev/null && [ -z "${PKG_CONFIG:-}" ]; then
    # shellcheck disable=SC2016  # $LD_LIBRARY_PATH and $@ are the wrapper's, not ours
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
      "$libdir" "$root/usr/bin/pkgconf" >"$root/pkg-config"
    chmod +x "$root/pkg-config"
    export PKG_CONFIG="$root/pkg-config"
  fi
  # HDF5: the library and headers under Debian's serial layout; h5cc's answers would be
  # the /usr paths of a Debian install, so it is not asked.
  extra+=(-DHDF5_ROOT="$libdir/hdf5/serial" -DHDF5_C_COMPILER_EXECUTABLE=/bin/false
          # RPATH (not RUNPATH): also searched for the libraries' own dependencies
          # (libhdf5 -> libsz, libcurl, ...), so nothing needs LD_LIBRARY_PATH.
          -DCMAKE_BUILD_RPATH="$libdir"
          "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags -Wl,-rpath-link,$libdir")
fi
[ -n "$prefix_path" ] && extra+=(-DCMAKE_PREFIX_PATH="${prefix_path#;}")

# Compiler flags: -Werror is for CI's gcc 12; a newer GCC's new false positives
# (-Wdangling-reference, 13) stay warnings here. Only flags this compiler knows.
cxx=${CXX:-c++}
if [ -z "${QF_GPU_CXXFLAGS+x}" ]; then
  QF_GPU_CXXFLAGS=""
  for w in dangling-reference maybe-uninitialized array-bounds stringop-overflow restrict; do
    echo 'int main() {}' | "$cxx" -x c++ -Werror "-W$w" -fsyntax-only - 2>/dev/null &&
      QF_GPU_CXXFLAGS+=" -Wno-error=$w"
  done
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
[ -f "$dir/CMakeCache.txt" ] && generator=()  # the cache keeps its generator
cmake -S . -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DQF_CUDA=ON \
  "${torch_args[@]}" "${extra[@]}" "-DCMAKE_CXX_FLAGS=${QF_GPU_CXXFLAGS# }" "$@"
targets=()
for t in ${QF_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$dir" -j "${QF_JOBS:-$(nproc)}" "${targets[@]}"
echo "build-gpu: built $dir (quantfork: $dir/cli/quantfork)"
