#!/usr/bin/env python3
"""Reads bench/gpu.sh's results folder (results-*.jsonl, tests.txt) and prints the Markdown
for bench/RESULTS.md: the machine and software, then the training step and the probe of
every implementation, as ratios to Hugging Face eager where it ran.
  python3 bench/gpu_report.py RESULTS_DIR

MFU (model FLOPs utilization) = achieved model FLOP/s / the GPU's dense bf16 peak, with
the model FLOPs of PaLM's appendix B, as nanoGPT counts them:
  FLOPs per token = 6 N + 12 L d T
N: the parameters that take part in matrix products, i.e. all but embed_in (a lookup; the
untied embed_out is a product and counts); 6 = 2 FLOPs per multiply-add x (forward +
2 for backward). 12 L d T: attention scores and values (2 products, 2 FLOPs, T keys, d
dims, x 3 for forward + backward) for L layers, context T, counted over the full T x T
square as PaLM does, although causal kernels skip half of it. Recomputation, the
optimizer and element-wise work are not model FLOPs. Peak: NVIDIA's dense (no sparsity)
bf16 tensor-core figure for the GPU that nvidia-smi names, or $QF_PEAK_TFLOPS."""
import glob
import json
import os
import re
import statistics
import subprocess
import sys

# Dense bf16 peak TFLOP/s by nvidia-smi name (first match wins).
PEAKS = [(r"H100.*(PCIe)", 756.0), (r"H100.*NVL", 835.0), (r"H100|H200|GH200", 989.4),
         (r"B200", 2250.0), (r"A100", 312.0), (r"L40S", 362.0), (r"A10\b", 125.0)]


def command(*args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine():
    smi = command("nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                  "--format=csv,noheader").splitlines()
    gpu = smi[0] if smi else "no GPU seen by nvidia-smi"
    peak = os.environ.get("QF_PEAK_TFLOPS")
    if peak:
        peak, source = float(peak), "QF_PEAK_TFLOPS"
    else:
        peak = next((p for pattern, p in PEAKS if re.search(pattern, gpu)), None)
        source = "dense bf16, NVIDIA's datasheet"
    versions = {"torch": command(os.environ.get("QF_PYTHON3", "python3"), "-c",
                                 "import torch; print(torch.__version__, 'CUDA', torch.version.cuda)"),
                "nvcc": command("nvcc", "--version").splitlines()[-2:-1],
                "c++": command(os.environ.get("CXX", "c++"), "--version").split("\n")[0],
                "cmake": command("cmake", "--version").split("\n")[0],
                "quantfork": command("git", "describe", "--always", "--dirty")}
    versions["nvcc"] = versions["nvcc"][0] if versions["nvcc"] else "?"
    return gpu, peak, source, versions


def flops_per_token(r):
    n = r["params"] - r["vocab"] * r["hidden"]  # all but embed_in
    return 6 * n + 12 * r["layers"] * r["hidden"] * r["seq"]


def label(r):
    names = {"quantfork": "quantfork (C++)", "python-hf": "HF transformers",
             "python-plain": "plain PyTorch"}
    return f"{names.get(r['impl'], r['impl'])}, {r.get('variant', '')}".rstrip(", ")


def main():
    folder = sys.argv[1]
    runs = [json.loads(line) for path in sorted(glob.glob(os.path.join(folder, "results-*.jsonl")))
            for line in open(path) if line.strip()]
    gpu, peak, source, v = machine()
    hf = next((r.get("transformers") for r in runs if r.get("transformers")), None)
    print(f"GPU: {gpu}. Dense bf16 peak for MFU: {f'{peak:g} TFLOP/s ({source})' if peak else 'unknown (set QF_PEAK_TFLOPS)'}.")
    print(f"Software: torch {v['torch']}; transformers {hf or 'not installed'}; {v['nvcc']}; "
          f"{v['c++']}; {v['cmake']}; quantfork {v['quantfork']}.\n")
    tests = os.path.join(folder, "tests.txt")
    if os.path.exists(tests):
        print("Tests: " + "; ".join(line.strip() for line in open(tests) if line.strip()) + "\n")

    train = [r for r in runs if r.get("mode") == "train"]
    print("Training step (forward + loss under bf16 autocast, backward, clip 1.0, AdamW), "
          "random init, median of the timed steps; MFU = (6N + 12LdT) x tokens/s / peak "
          "(bench/gpu_report.py)\n")
    print("| implementation | batch x seq | tokens/s | MFU | ms/step | GPU memory used (MB) | vs HF eager |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for batch in sorted({r["batch"] for r in train}):
        rows = [r for r in train if r["batch"] == batch]
        base = next((r for r in rows if r["impl"] == "python-hf" and r["variant"] == "eager"
                     and "error" not in r), None)
        base_tps = base and base["batch"] * base["seq"] / statistics.median(base["step_s"])
        for r in rows:
            if "error" in r:
                print(f"| {label(r)} | {batch} x {r.get('seq', '?')} | n/a: {r['error']} | | | | |")
                continue
            step = statistics.median(r["step_s"])
            tps = r["batch"] * r["seq"] / step
            mfu = f"{100 * tps * flops_per_token(r) / (peak * 1e12):.1f}%" if peak else "?"
            ratio = f"{tps / base_tps:.2f}x" if base_tps else ""
            print(f"| {label(r)} | {batch} x {r['seq']} | {tps:,.0f} | {mfu} | {1e3 * step:.1f} | "
                  f"{r.get('device_used_mb', '?')} | {ratio} |")

    probes = [r for r in runs if r.get("mode") == "probe"]
    if probes:
        first = next((r for r in probes if "error" not in r), probes[0])
        print(f"\nProbe of one checkpoint (FP32 + INT4 + INT8 perplexities and weight statistics, "
              f"float32, TF32 off): {first.get('sequences', '?')} x {first.get('seq', '?')} tokens, batch 4\n")
        print("| implementation | seconds per probe (best) | (median) | GPU memory used (MB) | HF eager / this |")
        print("|---|---:|---:|---:|---:|")
        base = next((r for r in probes if r["impl"] == "python-hf" and r.get("variant") == "eager"
                     and "error" not in r), None)
        for r in probes:
            if "error" in r:
                print(f"| {label(r)} | n/a: {r['error']} | | | |")
                continue
            best, median = min(r["probe_s"]), statistics.median(r["probe_s"])
            ratio = f"{min(base['probe_s']) / best:.2f}x" if base else ""
            print(f"| {label(r)} | {best:.2f} | {median:.2f} | {r.get('device_used_mb', '?')} | {ratio} |")


if __name__ == "__main__":
    main()
