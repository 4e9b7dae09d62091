#!/usr/bin/env bash
# Sequential GPTQ (int4_asym_g128, blocks of 128, damping 0.01) of a random-init
# Pythia-shaped model in quantfork against the authors' own code (IST-DASLab/gptq's
# gptq.py + quant.py driven as their opt.py drives them, gptq_bench.py), same machine,
# same run, same thread count, alternating ROUNDS times. The reference code is not part
# of quantfork: give a checkout of https://github.com/IST-DASLab/gptq as GPTQ_REF.
#   GPTQ_REF=/path/to/gptq bench/gptq_bench.sh [BUILD_DIR]
#   env: SIZE (160m), SEQUENCES (128), SEQ (2048 tokens per window), LAYERS (0: all),
#        THREADS (nproc), ROUNDS (1)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
python=${QF_PYTHON3:-/usr/bin/python3}
bin="$build/bench/bench_gptq"
[ -x "$bin" ] || { echo "gptq_bench: $bin is not built" >&2; exit 2; }
[ -f "${GPTQ_REF:-}/gptq.py" ] || { echo "gptq_bench: set GPTQ_REF to a checkout of IST-DASLab/gptq" >&2; exit 2; }
args=(--size "${SIZE:-160m}" --sequences "${SEQUENCES:-128}" --seq "${SEQ:-2048}"
      --layers "${LAYERS:-0}" --threads "${THREADS:-$(nproc)}")
for _ in $(seq "${ROUNDS:-1}"); do
  "$bin" "${args[@]}"
  "$python" bench/gptq_bench.py --gptq-ref "$GPTQ_REF" "${args[@]}" 2>/dev/null | tail -1
done
