#!/usr/bin/env bash
# Forward and forward+backward tokens/s and peak RSS of a Pythia-shaped GPT-NeoX (160m,
# batch 4, seq 512 by default) in quantfork against the same model in plain PyTorch
# (model_forward_backward.py, Debian's python3-torch): same machine, same run, same
# thread count. The two programs alternate ROUNDS times, so that a slow spell of the
# machine hits both; tokens/s come from the median step, and the best step is shown too,
# as are tokens per CPU-second of the process, which other work on the machine disturbs
# less than wall time.
#   bench/run_model_bench.sh [BUILD_DIR]
#   env: STEPS (timed steps per round, 2), ROUNDS (2), THREADS (nproc), SIZE (160m)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
python=${QF_PYTHON3:-/usr/bin/python3}
bin="$build/bench/bench_model_forward_backward"
[ -x "$bin" ] || { echo "run_model_bench: $bin is not built" >&2; exit 2; }
args=(--size "${SIZE:-160m}" --steps "${STEPS:-2}" --threads "${THREADS:-$(nproc)}")

results=()
for _ in $(seq "${ROUNDS:-2}"); do
  results+=("$("$bin" "${args[@]}")")
  results+=("$("$python" bench/model_forward_backward.py "${args[@]}")")
done
printf '%s\n' "${results[@]}"
printf '%s\n' "${results[@]}" | "$python" -c '
import json, statistics, sys
runs = [json.loads(line) for line in sys.stdin]
first = runs[0]
tokens = first["batch"] * first["seq"]
def merged(impl, key):
    return [t for r in runs if r["impl"] == impl for t in r[key]]
steps = len(merged("quantfork", "train_step_s"))
size, batch, seq, threads = first["size"], first["batch"], first["seq"], first["threads"]
print(f"\n{size}, batch {batch} x seq {seq}, {threads} threads, {steps} timed steps each")
print("| | quantfork | PyTorch (Python) | quantfork / PyTorch |\n|---|---|---|---|")
for key, label in (("forward", "forward"), ("train", "forward+backward")):
    for stat, name in ((statistics.median, "median"), (min, "best")):
        q, p = tokens / stat(merged("quantfork", key + "_step_s")), tokens / stat(merged("python", key + "_step_s"))
        print(f"| {label} tokens/s ({name} step) | {q:.0f} | {p:.0f} | {q / p:.2f}x |")
    q = tokens / statistics.median(merged("quantfork", key + "_cpu_s"))
    p = tokens / statistics.median(merged("python", key + "_cpu_s"))
    print(f"| {label} tokens per CPU-second (median step) | {q:.0f} | {p:.0f} | {q / p:.2f}x |")
for key, label in (("peak_rss_forward_mb", "peak RSS after the forward steps (MB)"), ("peak_rss_mb", "peak RSS (MB)")):
    q = max(r[key] for r in runs if r["impl"] == "quantfork")
    p = max(r[key] for r in runs if r["impl"] == "python")
    print(f"| {label} | {q} | {p} | {q / p:.2f}x |")
'
