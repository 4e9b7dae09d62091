#!/usr/bin/env python3
"""Reads quant_bench.sh's JSON lines on stdin and prints the Markdown tables of
bench/RESULTS.md."""
import json
import statistics
import sys

runs = [json.loads(line) for line in sys.stdin if line.strip()]
quantize = next(r for r in runs if r["impl"] == "quantfork" and r["mode"] == "quantize")
p = [r for r in runs if r["impl"] == "python" and r["mode"] == "probe"]
q = [r for r in runs if r["impl"] == "quantfork" and r["mode"] == "probe" and r["sequences"] == p[0]["sequences"]]
big = [r for r in runs if r["impl"] == "quantfork" and r["mode"] == "probe" and r["sequences"] != p[0]["sequences"]]
pq = [r for r in runs if r["impl"] == "python" and r["mode"] == "quantize"]
schemes = ("int4_asym_g128", "int8_sym_channel")
tokens = q[0]["sequences"] * q[0]["seq"]
print(f"\n{quantize['size']} (random init), {q[0]['sequences']} x {q[0]['seq']} = {tokens} evaluation "
      f"tokens, batch {q[0]['batch']}, {q[0]['threads']} threads; FP32 weights {q[0]['fp32_weights_mb']:.0f} MB, "
      f"of which the probe quantizes {quantize['quantized_weights_mb']:.0f} MB\n")
print("| quantization, GB/s of float32 weights (best run) | " + " | ".join(schemes) + " |\n|---|---|---|")
for key, label in (("fake_quantize_gb_s", "quantfork fused kernel: ŵ + error sums into another tensor"),
                   ("fake_quantize_in_place_gb_s",
                    f"quantfork fused kernel, in place (the probe's path; {quantize.get('kernel_isa', '?')})"),
                   ("fake_quantize_in_place_portable_gb_s",
                    "quantfork fused kernel, in place, portable (a CPU without AVX2)"),
                   ("quantize_with_codes_gb_s", "quantfork fused kernel with codes, scales, zeros"),
                   ("torch_ops_gb_s", "quantfork torch-operation path (used off the CPU)"),
                   ("scalar_reference_gb_s", "quantfork scalar reference (one thread)")):
    print(f"| {label} | " + " | ".join(f"{quantize['quantize'][s][key]:.2f}" for s in schemes) + " |")
print("| PyTorch (Python) pseudo_quantize_tensor | " +
      " | ".join(f"{max(r['quantize'][s]['torch_ops_gb_s'] for r in pq):.2f}" for s in schemes) + " |")

# Best runs: on a shared machine the slowest ones measure the neighbours.
qs = min(s for r in q for s in r["probe_s"])
ps = min(s for r in p for s in r["probe_s"])
qm = statistics.median(s for r in q for s in r["probe_s"])
pm = statistics.median(s for r in p for s in r["probe_s"])
qf = min(r["fp32_eval_s"] for r in q)
pf = min(r["fp32_eval_s"] for r in p)
w = q[0]["fp32_weights_mb"]
qpeak = max(r["probe_peak_rss_mb"] for r in q)
ppeak = max(r["peak_rss_mb"] for r in p)
print("\n| probe | quantfork | PyTorch (Python) | PyTorch / quantfork |\n|---|---|---|---|")
print(f"| seconds per probe: FP32 + INT4 + INT8 evaluations and statistics (best run) | {qs:.2f} | {ps:.2f} | {ps / qs:.2f}x |")
print(f"| seconds per probe (median run) | {qm:.2f} | {pm:.2f} | {pm / qm:.2f}x |")
print(f"| evaluation tokens/s over the probe (3 x {tokens} tokens, best run) | {3 * tokens / qs:.0f} | {3 * tokens / ps:.0f} | {ps / qs:.2f}x |")
print(f"| FP32 evaluation tokens/s (best run) | {tokens / qf:.0f} | {tokens / pf:.0f} | {pf / qf:.2f}x |")
print(f"| peak RSS (MB): quantfork during the probe, PyTorch whole process | {qpeak} | {ppeak} | |")
print(f"| peak RSS / FP32 weights | {qpeak / w:.2f} | {ppeak / w:.2f} | |")
print(f"| (peak RSS − RSS before loading the model) / FP32 weights | "
      f"{(qpeak - max(r['baseline_rss_mb'] for r in q)) / w:.2f} | {(ppeak - p[0]['baseline_rss_mb']) / w:.2f} | |")
for r in big:
    print(f"| quantfork at {r['sequences']} x {r['seq']} tokens (the default evaluation set): seconds, "
          f"peak RSS (MB), / FP32 weights, (peak − RSS before loading) / weights | {r['probe_s'][0]:.1f} s, "
          f"{r['probe_peak_rss_mb']}, {r['probe_peak_rss_mb'] / w:.2f}, "
          f"{(r['probe_peak_rss_mb'] - r['baseline_rss_mb']) / w:.2f} | | |")
print(f"| load the float16 checkpoint as float32: seconds, peak RSS (MB) | "
      f"{min(r['load_s'] for r in q):.2f} s, {max(r['load_peak_rss_mb'] for r in q)} | | |")
