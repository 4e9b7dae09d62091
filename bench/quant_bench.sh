#!/usr/bin/env bash
# Quantization throughput, and the probe of a random-init Pythia-shaped checkpoint (160m by
# default, 8 x 512 = 4,096 evaluation tokens), in quantfork against the same probe in
# plain PyTorch (quant_bench.py, Debian's python3-torch): same machine, same run, same
# thread count, the probes of the two alternating ROUNDS times, each in a fresh process
# (so peak memory is the probe's own). Prints the JSON lines and a Markdown table for
# bench/RESULTS.md.
#   bench/quant_bench.sh [BUILD_DIR]
#   env: ROUNDS (2), REPEATS (timed probes per process, 2), THREADS (nproc), SIZE (160m),
#        SEQUENCES (8), MEMORY_SEQUENCES (128: one more quantfork probe, for its peak memory
#        on the probe's default evaluation set of 128 x 512 tokens; 0 skips it)
# The probe runs with its default batch, 4 sequences (the paper's 4 x 512).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
python=${QF_PYTHON3:-/usr/bin/python3}
bin="$build/bench/bench_quant"
[ -x "$bin" ] || { echo "quant_bench: $bin is not built" >&2; exit 2; }
threads=${THREADS:-$(nproc)}
args=(--size "${SIZE:-160m}" --threads "$threads" --rounds "${REPEATS:-2}")
sequences=(--sequences "${SEQUENCES:-8}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" --mode save --size "${SIZE:-160m}" --checkpoint "$tmp/checkpoint"
results=("$("$bin" --mode quantize "${args[@]}")" "$("$python" bench/quant_bench.py --mode quantize "${args[@]}")")
for _ in $(seq "${ROUNDS:-2}"); do
  results+=("$("$bin" --mode probe --checkpoint "$tmp/checkpoint" --threads "$threads" \
    --rounds "${REPEATS:-2}" "${sequences[@]}")")
  results+=("$("$python" bench/quant_bench.py "${args[@]}" "${sequences[@]}")")
done
if [ "${MEMORY_SEQUENCES:-128}" -gt 0 ]; then
  results+=("$("$bin" --mode probe --checkpoint "$tmp/checkpoint" --threads "$threads" \
    --rounds 1 --sequences "${MEMORY_SEQUENCES:-128}")")
fi
printf '%s\n' "${results[@]}"
printf '%s\n' "${results[@]}" | "$python" bench/quant_report.py
