#!/usr/bin/env bash
# Downloads, as .deb files, the Debian 12 libraries quantfork compiles, links and runs
# with (everything but libtorch, the compiler and glibc), so that they can be carried to
# a machine that has a CUDA PyTorch but neither these libraries nor a network, e.g. a
# GPU machine. There, `QF_DEBS=<this folder> scripts/build-gpu.sh` unpacks them with
# `dpkg -x` into one folder and builds against it (docker/README.md).
#   scripts/fetch-debs.sh [DIR]      default DIR: build/debs
# Needs apt's package lists (`apt-get update`, as root, once); the download itself needs
# no root. Writes DIR/MANIFEST (packages, versions, the newest glibc symbol version the
# libraries need) and checks that the set is closed: every shared library that a library
# in it needs is in it too, or is one of glibc's or the compiler's.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/debs}

# What our CMake files find: headers, CMake and pkg-config files, the .so link names.
# Their Depends are not followed (they would bring compilers, libc6-dev and unused -dev
# packages, whose headers would then shadow the host's); the libraries are below. Keep in
# step with the -dev packages of scripts/setup.sh (libboost1.74-dev holds the headers and
# CMake files behind libboost-math-dev; libgtest-dev and libgmock-dev are static).
DEV=(libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libhdf5-dev libgtest-dev
     libgmock-dev libboost1.74-dev libpcre2-dev libutf8proc-dev libzstd-dev)
# The shared libraries those link names point to, with their whole runtime closure, and
# pkg-config (our CMake finds pcre2, utf8proc and zstd with it; the host may lack it).
RUNTIME=(libyaml-cpp0.7 libspdlog1.10 libfmt9 libhdf5-103-1 libpcre2-8-0 libutf8proc2 libzstd1
         pkgconf-bin)
# Present wherever a C++ compiler is; copies from Debian would shadow the host's own.
BASE=(libc6 libgcc-s1 libstdc++6 gcc-12-base)
# Their sonames, which the closure check below accepts from the host.
BASE_SONAMES='^(libc|libm|libdl|libpthread|librt|libresolv|libutil|ld-linux-x86-64|libstdc\+\+|libgcc_s)\.so'

arch=$(dpkg --print-architecture)
if [ "$arch" != amd64 ]; then
  echo "fetch-debs: this machine is $arch; the GPU machines are amd64 (x86-64)" >&2
  exit 2
fi
for tool in readelf objdump; do
  command -v "$tool" >/dev/null || { echo "fetch-debs: needs $tool (apt-get install binutils)" >&2; exit 2; }
done
if ! apt-cache show libyaml-cpp0.7 >/dev/null 2>&1; then
  echo "fetch-debs: apt knows no package libyaml-cpp0.7: run 'apt-get update' (as root) first" >&2
  exit 2
fi

# The runtime closure as apt resolves it for an empty system (no package installed).
mapfile -t closure < <(apt-get -s -o Dir::State::status=/dev/null --no-install-recommends \
                         install "${RUNTIME[@]}" | awk '$1 == "Inst" { print $2 }')
packages=("${DEV[@]}")
for p in "${closure[@]}"; do
  [[ " ${BASE[*]} " == *" $p "* ]] || packages+=("$p")
done

mkdir -p "$out"
rm -f "$out"/*.deb
echo "fetch-debs: downloading ${#packages[@]} packages into $out"
sandbox=()  # as root, apt would download as _apt, who may not be able to write there
[ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
(cd "$out" && apt-get download -q "${sandbox[@]}" "${packages[@]}" >/dev/null)

# Unpack into a scratch root to check the closure and find the glibc the set needs.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
for deb in "$out"/*.deb; do dpkg-deb -x "$deb" "$root"; done
libdir="$root/usr/lib/x86_64-linux-gnu"
missing=()
glibc=2.0
while IFS= read -r -d '' lib; do
  readelf -h "$lib" >/dev/null 2>&1 || continue  # scripts and links to nowhere
  while read -r needed; do
    [[ $needed =~ $BASE_SONAMES ]] && continue
    [ -e "$libdir/$needed" ] || [ -e "$root/lib/x86_64-linux-gnu/$needed" ] ||
      missing+=("$(basename "$lib") needs $needed")
  done < <(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  v=$(objdump -T "$lib" | grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2,2n | tail -n 1 | cut -d_ -f2)
  [ -n "$v" ] && [ "${v#2.}" -gt "${glibc#2.}" ] && glibc=$v
done < <(find "$root" -type f \( -name '*.so*' -o -path '*/bin/*' \) -print0)
if [ ${#missing[@]} -gt 0 ]; then
  printf 'fetch-debs: the set is not closed: %s\n' "${missing[@]}" >&2
  exit 1
fi

{
  echo "# quantfork build dependencies, Debian $(cut -d. -f1 /etc/debian_version) $arch, fetched $(date -u +%F)"
  echo "glibc_min=$glibc"
  # shellcheck disable=SC2016  # dpkg's own ${field} syntax
  for deb in "$out"/*.deb; do dpkg-deb -W --showformat='${Package}=${Version}\n' "$deb"; done
} >"$out/MANIFEST"
echo "fetch-debs: $(find "$out" -name '*.deb' | wc -l) packages, $(du -sh "$out" | cut -f1), closed;" \
     "the libraries need glibc >= $glibc; list in $out/MANIFEST"
