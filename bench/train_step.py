#!/usr/bin/env python3
"""The Python side of train_bench.sh: the training step `quantfork train` takes, written in
plain PyTorch. The model is model_forward_backward.py's GPTNeoX (imported, not copied).
A step reads the batch (global_batch rows of seq+1 tokens from the same indexed dataset,
consecutive windows), runs forward on the rows, F.cross_entropy of logits[:, :-1]
against ids[:, 1:] (seq predictions per row: the work of quantfork's model->loss(rows)),
backward, clip_grad_norm_(1.0), torch.optim.AdamW with Pythia's parameter groups (weight
decay 0.1 on >= 2-D parameters, 0 on biases and LayerNorms; betas 0.9/0.95, eps 1e-8;
PyTorch 1.13's default single-tensor path) and zero_grad(set_to_none=True), as
train/optimizer.h's AdamW::zero_grad does. Every step is timed, the first included
(train_bench.sh drops it as warm-up). Prints one JSON object. Run it with Debian's
/usr/bin/python3 (python3-torch)."""
import argparse
import json
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F

from model_forward_backward import SIZES, GPTNeoX  # bench/ is sys.path[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", default="160m")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--data", default="", help="indexed dataset prefix (PREFIX.bin, uint16)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1234)
    layers, d, heads, vocab = SIZES[a.size]
    model = GPTNeoX(layers, d, heads, vocab).train()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    window = a.seq + 1
    if a.data:
        tokens = np.memmap(a.data + ".bin", dtype=np.uint16, mode="r")
    else:
        tokens = np.random.default_rng(1).integers(0, vocab, a.steps * a.batch * window,
                                                   dtype=np.uint16)
    if len(tokens) < a.steps * a.batch * window:
        raise SystemExit(f"train_step.py: {len(tokens)} tokens, need {a.steps * a.batch * window}")

    step_s, cpu_s, losses = [], [], []
    for s in range(a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        rows = tokens[s * a.batch * window:(s + 1) * a.batch * window]
        ids = torch.from_numpy(rows.astype(np.int64)).view(a.batch, window)
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        losses.append(loss.item())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_s.append(time.perf_counter() - t0)
        cpu_s.append(time.process_time() - c0)
    print(json.dumps({
        "impl": "python", "size": a.size, "batch": a.batch, "seq": a.seq, "threads": a.threads,
        "params": sum(p.numel() for p in params), "step_s": step_s, "cpu_s": cpu_s,
        "loss": [round(x, 6) for x in losses],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "torch": torch.__version__}))


if __name__ == "__main__":
    main()
