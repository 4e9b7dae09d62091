#!/usr/bin/env bash
# Everything quantfork measures on a GPU, in one command, on a machine with one CUDA GPU,
# a CUDA PyTorch (pip), nvcc, a C++ compiler and CMake, and nothing else: the Debian
# libraries come as .deb files (scripts/fetch-debs.sh, run where Debian's mirrors are):
#   QF_DEBS=build/debs bench/gpu.sh [STAGE]
# STAGE: all (default) = build, test, bench; bench = train, probe, report.
#   build   scripts/build-gpu.sh: the CUDA configuration in build/gpu
#   test    the GPU tests (ctest -L gpu, QF_REQUIRE_GPU=1: no silent skips), then the rest
#   train   the training step (tokens/s, MFU) of a Pythia-160m-shaped model at seq 2048,
#           per batch size: quantfork (bench_gpu_train, with train/'s AdamW and with
#           libtorch's) against Hugging Face transformers and plain PyTorch, eager and
#           torch.compile (gpu_hf_bench.py), each in a process of its own
#   probe   seconds per probe of one checkpoint, the same contenders
#   report  the table for bench/RESULTS.md (gpu_report.py) from whatever ran
# Each stage fits a 10-minute command limit (train with one batch size per call:
# BATCHES=4, then BATCHES=16). Results: build/gpu/gpu-bench/ (results-*.jsonl, tests.txt,
# results.md, logs/).
# env: BATCHES ("4 16"; 4 x 2048 is the paper's step), SEQ (2048), STEPS (20 timed),
#      WARMUP (5), SIZE (160m), PROBE_SEQUENCES (128, the paper's 128 x 512), PROBE_SEQ
#      (512), TESTS (all | gpu), QF_PYTHON3 (python3), QF_PEAK_TFLOPS (the GPU's dense
#      bf16 peak when gpu_report.py doesn't know the GPU), and build-gpu.sh's variables
#      (QF_DEBS, QF_DEB_ROOT, QF_BUILD_DIR, QF_JOBS, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-all}
build=${QF_BUILD_DIR:-build/gpu}
out=$build/gpu-bench
python=${QF_PYTHON3:-python3}
mkdir -p "$out/logs"
t0=$SECONDS
say() { echo; echo "=== gpu.sh: $* ($((SECONDS - t0)) s) ==="; }
case "$stage" in
  all) stages=" build test train probe report " ;;
  bench) stages=" train probe report " ;;
  build | test | train | probe | report) stages=" $stage " ;;
  *) echo "usage: bench/gpu.sh [all | build | test | bench | train | probe | report]" >&2; exit 2 ;;
esac
has() { [[ $stages == *" $1 "* ]]; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader ||
  echo "gpu.sh: nvidia-smi sees no GPU; the GPU tests will fail and the benchmarks report errors" >&2

failed=0
if has build; then
  say "build ($build)"
  QF_BUILD_DIR=$build scripts/build-gpu.sh
fi

if has test; then
  say "GPU tests"
  : >"$out/tests.txt"
  summary() {
    { grep -E 'tests passed|No tests were found' "$1" || echo "no ctest summary, see $1"; } |
      tail -n 1 | sed "s|^|$2: |" >>"$out/tests.txt"
  }
  QF_REQUIRE_GPU=1 ctest --test-dir "$build" -L gpu --output-on-failure --timeout 600 \
    2>&1 | tee "$out/logs/test-gpu.log" || failed=1
  summary "$out/logs/test-gpu.log" "GPU tests (ctest -L gpu)"
  if [ "${TESTS:-all}" = all ]; then
    say "all other tests"
    ctest --test-dir "$build" -LE gpu --output-on-failure -j "$(nproc)" --timeout 600 \
      >"$out/logs/test-all.log" 2>&1 || failed=1
    tail -n 20 "$out/logs/test-all.log"
    summary "$out/logs/test-all.log" "all other tests (ctest -LE gpu)"
  fi
fi

bin=$build/bench/bench_gpu_train
if has train || has probe; then
  [ -x "$bin" ] || { echo "gpu.sh: $bin is not built (bench/gpu.sh build)" >&2; exit 2; }
fi
# run FILE NAME MODE BATCH COMMAND...: appends the command's JSON line to FILE, or a line
# saying that it died.
run() {
  local results=$1 log=$out/logs/$2.log mode=$3 batch=$4 line
  shift 4
  echo "--- $*"
  line=$("$@" 2>"$log" | tail -n 1) || true
  if [[ $line != "{"* ]]; then
    line="{\"impl\": \"$(basename "$log" .log)\", \"mode\": \"$mode\", \"batch\": $batch, \"error\": \"no result, see $log\"}"
  fi
  echo "$line" | tee -a "$results"
}

if has train; then
  common=(--size "${SIZE:-160m}" --seq "${SEQ:-2048}" --steps "${STEPS:-20}" --warmup "${WARMUP:-5}")
  for b in ${BATCHES:-4 16}; do
    say "training step, batch $b x ${SEQ:-2048}"
    results=$out/results-train-b$b.jsonl
    : >"$results"
    for opt in quantfork torch; do
      run "$results" "train-qf-$opt-b$b" train "$b" "$bin" --mode train --optimizer "$opt" \
        --batch "$b" "${common[@]}"
    done
    for impl in hf plain; do
      for c in "" --compile; do
        run "$results" "train-$impl${c:+-compile}-b$b" train "$b" \
          "$python" bench/gpu_hf_bench.py --impl "$impl" ${c:+"$c"} --mode train --batch "$b" "${common[@]}"
      done
    done
  done
fi

if has probe; then
  say "probe, ${PROBE_SEQUENCES:-128} x ${PROBE_SEQ:-512} tokens"
  results=$out/results-probe.jsonl
  : >"$results"
  probe=(--size "${SIZE:-160m}" --sequences "${PROBE_SEQUENCES:-128}" --seq "${PROBE_SEQ:-512}")
  run "$results" probe-qf probe 4 "$bin" --mode probe --batch 4 "${probe[@]}"
  for impl in hf plain; do
    for c in "" --compile; do
      run "$results" "probe-$impl${c:+-compile}" probe 4 \
        "$python" bench/gpu_hf_bench.py --impl "$impl" ${c:+"$c"} --mode probe "${probe[@]}"
    done
  done
fi

if has report; then
  say "report ($out/results.md)"
  "$python" bench/gpu_report.py "$out" | tee "$out/results.md"
fi
say "done"
exit $failed
