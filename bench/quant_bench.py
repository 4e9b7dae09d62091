#!/usr/bin/env python3
"""The Python side of quant_bench.sh: the probe as a PyTorch user would write it, on the
same Pythia-shaped model (model_forward_backward.py's GPTNeoX, random init): FP32
perplexity, then for INT4 (llm-awq's pseudo_quantize_tensor, asym g128) and INT8
(AutoAWQ's, sym per channel) a saved copy of the Linear weights inside the layers,
quantize in place, evaluate, restore; kurtosis, relative error and grid residual per
tensor. Timed as the C++ side is timed. Prints one JSON object. Run it with Debian's
/usr/bin/python3 (python3-torch)."""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_forward_backward import GPTNeoX, SIZES  # noqa: E402


def pseudo_quantize(w, n_bit, group_size, zero_point):
    shape = w.shape
    w = w.reshape(-1, group_size) if group_size > 0 else w
    if zero_point:
        max_val, min_val = w.amax(dim=1, keepdim=True), w.amin(dim=1, keepdim=True)
        max_int = 2 ** n_bit - 1
        scales = (max_val - min_val).clamp(min=1e-5) / max_int
        zeros = (-torch.round(min_val / scales)).clamp_(0, max_int)
        r = w / scales
        out = (torch.clamp(torch.round(r) + zeros, 0, max_int) - zeros) * scales
    else:
        max_int = 2 ** (n_bit - 1) - 1
        scales = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-5) / max_int
        r = w / scales
        out = torch.clamp(torch.round(r), -max_int - 1, max_int) * scales
    return out.reshape(shape), (r - torch.round(r)).abs().double().mean().item()


def kurtosis(w):
    x = w.double().flatten()
    d2 = (x - x.mean()) ** 2
    return (d2.pow(2).mean() / d2.mean() ** 2).item() - 3.0


def perplexity(model, windows, batch):
    total = 0.0
    for b in range(0, windows.shape[0], batch):
        w = windows[b:b + batch]
        logits = model(w[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))
        total += loss.item() * w[:, 1:].numel()
    return torch.tensor(total / windows[:, 1:].numel()).exp().item()


def probe(model, windows, batch):
    linears = [m.weight for layer in model.layers
               for m in (layer.attention.query_key_value, layer.attention.dense,
                         layer.dense_h_to_4h, layer.dense_4h_to_h)]
    stats = [{"kurtosis": kurtosis(w)} for w in linears]
    ppl = {"fp32": perplexity(model, windows, batch)}
    for name, bits, group, zp in (("int4", 4, 128, True), ("int8", 8, -1, False)):
        saved = [w.detach().clone() for w in linears]
        for w, s in zip(linears, stats):
            q, residual = pseudo_quantize(w.data, bits, group, zp)
            s["rel_error_" + name] = ((w.data.double() - q.double()).norm() / w.data.double().norm()).item()
            if name == "int4":
                s["grid_residual"] = residual
            w.data.copy_(q)
        ppl[name] = perplexity(model, windows, batch)
        for w, s in zip(linears, saved):
            w.data.copy_(s)
        del saved
    return ppl


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="probe", choices=("probe", "quantize"))
    p.add_argument("--size", default="160m")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sequences", type=int, default=8)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1234)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    layers, d, heads, vocab = SIZES[a.size]
    out = {"impl": "python", "mode": a.mode, "size": a.size, "threads": a.threads, "torch": torch.__version__}
    with torch.no_grad():
        model = GPTNeoX(layers, d, heads, vocab).eval()
        out["fp32_weights_mb"] = round(sum(p.numel() * 4 for p in model.parameters()) / 1e6, 1)
        if a.mode == "quantize":
            linears = [m.weight for layer in model.layers
                       for m in (layer.attention.query_key_value, layer.attention.dense,
                                 layer.dense_h_to_4h, layer.dense_4h_to_h)]
            gb = sum(w.numel() * 4 for w in linears) / 1e9
            out["quantize"] = {}
            for name, bits, group, zp in (("int4_asym_g128", 4, 128, True), ("int8_sym_channel", 8, -1, False)):
                best = 1e30
                for _ in range(a.rounds):
                    t0 = time.perf_counter()
                    for w in linears:
                        pseudo_quantize(w, bits, group, zp)
                    best = min(best, time.perf_counter() - t0)
                out["quantize"][name] = {"torch_ops_gb_s": gb / best}
        else:
            windows = torch.randint(vocab, (a.sequences, a.seq + 1), generator=torch.Generator().manual_seed(1))
            probe_s = []
            for _ in range(a.rounds):
                t0 = time.perf_counter()
                out["ppl"] = probe(model, windows, a.batch)
                probe_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            perplexity(model, windows, a.batch)
            out.update({"sequences": a.sequences, "seq": a.seq, "batch": a.batch, "probe_s": probe_s,
                        "fp32_eval_s": time.perf_counter() - t0})
    out.update({"baseline_rss_mb": baseline, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
