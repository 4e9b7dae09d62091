#!/usr/bin/env bash
# Training tokens/s of `quantfork train` (the real training loop: data reader, forward,
# fused LM head + loss, backward, clipping, AdamW, run.h5) against the same step in plain
# PyTorch (bench/train_step.py: model_forward_backward.py's model, F.cross_entropy,
# clip_grad_norm_, torch.optim.AdamW with Pythia's groups), Pythia-160m shape, batch 4 x
# seq 512, same thread count, in the same run, the two programs alternating ROUNDS times.
# quantfork's step times are the step_time_s of run.h5's /train rows; the first update of
# every run (and the first step of every Python run) is warm-up and dropped. Then
# bench_checkpoint: checkpoint save / load seconds and sizes with AdamW state, and the
# trainer's per-update bookkeeping (run.h5 row, hooks, progress line) as a share of the
# median quantfork step. Peak RSS of every process from /usr/bin/time.
#   bench/train_bench.sh [BUILD_DIR]          (default build/release)
#   env: STEPS (updates per run, 4), ROUNDS (2), THREADS (2), SIZE (160m),
#        QF_PYTHON3 (/usr/bin/python3), TMPDIR (scratch; a run's checkpoint is ~2 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
python=${QF_PYTHON3:-/usr/bin/python3}
qf="$build/cli/quantfork"
ckpt_bin="$build/bench/bench_checkpoint"
for b in "$qf" "$ckpt_bin"; do
  [ -x "$b" ] || { echo "train_bench: $b is not built" >&2; exit 2; }
done
steps=${STEPS:-4} rounds=${ROUNDS:-2} threads=${THREADS:-2} size=${SIZE:-160m}
batch=4 seq=512
[ "$steps" -ge 2 ] || { echo "train_bench: STEPS must be at least 2 (the first is warm-up)" >&2; exit 2; }
scratch=$(mktemp -d "${TMPDIR:-/tmp}/qf_train_bench.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
here=$PWD

# Random tokens (< 50304) as a Megatron MMIDIDX dataset (data/indexed_dataset.h): items of
# 2049 tokens, one document each, enough windows of seq + 1 tokens for every update.
"$python" - "$scratch/tokens" "$((steps * batch * (seq + 1)))" <<'EOF'
import struct, sys
import numpy as np
prefix, need = sys.argv[1], int(sys.argv[2])
items = max(16, need // 2049 + 8)
sizes = np.full(items, 2049, dtype=np.int32)
np.random.default_rng(7).integers(0, 50304, int(sizes.sum()), dtype=np.uint16).tofile(prefix + ".bin")
pointers = np.concatenate(([0], np.cumsum(sizes[:-1].astype(np.int64) * 2))).astype(np.int64)
with open(prefix + ".idx", "wb") as f:
    f.write(b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, 8, items, items + 1))
    f.write(sizes.tobytes() + pointers.tobytes() + np.arange(items + 1, dtype=np.int64).tobytes())
EOF

# One `quantfork train` run from scratch; prints a JSON line (step times from run.h5).
run_quantfork() {
  local dir="$scratch/qf$1"
  mkdir -p "$dir"
  cat > "$dir/run.yaml" <<EOF
run: {dir: run}
model: {preset: $size}
train: {steps: $steps, global_batch: $batch, seq_len: $seq, threads: $threads}
data: {dataset: ../tokens}
EOF
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  if ! /usr/bin/time -f '%M %e' -o "$dir/time.txt" \
      "$qf" train --config "$dir/run.yaml" > "$dir/out.log" 2>&1; then
    cat "$dir/out.log" >&2; return 1
  fi
  "$python" - "$dir" "$load" "$size" "$threads" <<'EOF'
import json, sys
import h5py
d, load, size, threads = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rss_kb, wall = open(d + "/time.txt").read().split()[-2:]
with h5py.File(d + "/run/run.h5", "r") as f:
    rows = f["train"][:]
print(json.dumps({"impl": "quantfork", "size": size, "threads": threads,
                  "step_s": [float(x) for x in rows["step_time_s"]],
                  "tokens_per_s": [float(x) for x in rows["tokens_per_s"]],
                  "loss": [round(float(x), 6) for x in rows["loss"]],
                  "peak_rss_mb": int(rss_kb) // 1024, "process_wall_s": float(wall),
                  "load_before": load}))
EOF
  rm -rf "$dir"  # the final checkpoint: ~2 GB
}

run_python() {
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f '%M %e' -o "$scratch/time_py.txt" \
    "$python" bench/train_step.py --size "$size" --batch "$batch" --seq "$seq" \
    --steps "$steps" --threads "$threads" --data "$scratch/tokens" > "$scratch/py.json"
  "$python" - "$scratch" "$load" <<'EOF'
import json, sys
d, load = sys.argv[1], float(sys.argv[2])
r = json.load(open(d + "/py.json"))
rss_kb, wall = open(d + "/time_py.txt").read().split()[-2:]
r.update(peak_rss_mb=int(rss_kb) // 1024, process_wall_s=float(wall), load_before=load)
print(json.dumps(r))
EOF
}

results=()
for r in $(seq "$rounds"); do
  results+=("$(run_quantfork "$r")")
  results+=("$(run_python)")
done
ckpt=$("$ckpt_bin" --size "$size" --threads "$threads" --dir "$scratch")
results+=("$ckpt")
printf '%s\n' "${results[@]}" | tee "$scratch/results.jsonl"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}"

"$python" - "$scratch/results.jsonl" "$batch" "$seq" <<'EOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
batch, seq = int(sys.argv[2]), int(sys.argv[3])
tokens = batch * seq
ck = next(r for r in runs if "save_s" in r)
train = [r for r in runs if "step_s" in r]


def steps(impl):  # every run's steps but its first (warm-up)
    return [t for r in train if r["impl"] == impl for t in r["step_s"][1:]]


q, p = steps("quantfork"), steps("python")
print(f"\n{train[0]['size']}, batch {batch} x seq {seq}, {train[0]['threads']} threads, "
      f"{len(q)} timed updates each (the first update of every run dropped)")
print("| | quantfork train | PyTorch (Python) | quantfork / PyTorch |\n|---|---:|---:|---:|")
for stat, name in ((statistics.median, "median"), (min, "best")):
    tq, tp = tokens / stat(q), tokens / stat(p)
    print(f"| training tokens/s ({name} step) | {tq:.0f} | {tp:.0f} | {tq / tp:.2f}x |")
print(f"| step seconds (median) | {statistics.median(q):.2f} | {statistics.median(p):.2f} | |")
rq = max(r["peak_rss_mb"] for r in train if r["impl"] == "quantfork")
rp = max(r["peak_rss_mb"] for r in train if r["impl"] == "python")
print(f"| peak RSS of the process (MB) | {rq} | {rp} | {rq / rp:.2f}x |")
loads = [r["load_before"] for r in train]
print(f"| load average before the runs | {min(loads):.1f} to {max(loads):.1f} | | |")

step = statistics.median(q)
book, append = min(ck["bookkeeping_us_per_update"]), min(ck["append_train_us_per_update"])
save, warm, cold = ck["save_s"], ck["load_warm_s"], ck["load_cold_s"]
mb = 1e-6
print(f"\n| trainer overhead, checkpoints ({ck['size']}, AdamW state) | |\n|---|---:|")
print(f"| per-update bookkeeping: run.h5 row, hooks, progress line (us) | {book:.0f} |")
print(f"| of which the run.h5 row, appended and flushed (us) | {append:.0f} |")
print(f"| bookkeeping as a share of the median quantfork step | {100e-6 * book / step:.4f}% |")
print(f"| checkpoint save (s, best / worst of {len(save)}) | {min(save):.2f} / {max(save):.2f} |")
print(f"| checkpoint load, files in the page cache (s) | {min(warm):.2f} / {max(warm):.2f} |")
print(f"| checkpoint load, page cache dropped first (s) | {min(cold):.2f} / {max(cold):.2f} |")
print(f"| checkpoint (MB): model.safetensors + trainer_state.safetensors = all files | "
      f"{ck['model_bytes'] * mb:.0f} + {ck['trainer_state_bytes'] * mb:.0f} = "
      f"{ck['checkpoint_bytes'] * mb:.0f} |")
print(f"| bench_checkpoint RSS (MB): model + optimizer / peak after saves and loads | "
      f"{ck['rss_before_mb']} / {ck['peak_rss_mb']} |")
EOF
