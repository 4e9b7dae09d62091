#!/usr/bin/env bash
# The kill-anywhere stress test: `quantfork train` with a checkpoint, a prune and a probe
# at every update, killed with SIGKILL at uniformly random moments and started again
# until done, round after round, for MINUTES minutes; every finished round's run.h5 must
# equal an uninterrupted run's bitwise and every checkpoint must be whole (see
# bench/kill_anywhere.cpp). The CI runs a short version (tests/train/reliability_test.cpp).
#   bench/kill_anywhere.sh [BUILD_DIR]     env: MINUTES (20), SEED, TMPDIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
for b in "$build/cli/quantfork" "$build/bench/bench_kill_anywhere"; do
  [ -x "$b" ] || { echo "kill_anywhere: $b is not built" >&2; exit 2; }
done
scratch=$(mktemp -d "${TMPDIR:-/tmp}/qf_kill_anywhere.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$build/bench/bench_kill_anywhere" "$build/cli/quantfork" "$scratch" \
  "$(( ${MINUTES:-20} * 60 ))" "${SEED:-20261204}"
