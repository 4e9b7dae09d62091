#!/usr/bin/env python3
"""The Python side of run_model_bench.sh: the same Pythia-shaped GPT-NeoX written the way
a PyTorch user would write it (nn.Linear / nn.LayerNorm / nn.Embedding, Hugging Face's
computation: fused per-head QKV, rotate-half partial rotary, causal softmax attention in
float32, exact GELU, logits -> cross_entropy), timed exactly as the C++ side is timed.
Prints one JSON object. Run it with Debian's /usr/bin/python3 (python3-torch)."""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F
from torch import nn

# Pythia sizes: layers, hidden, heads, vocab (as model/gpt_neox_config.cpp).
SIZES = {"14m": (6, 128, 4, 50304), "70m": (6, 512, 8, 50304), "160m": (12, 768, 12, 50304),
         "410m": (24, 1024, 16, 50304)}


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.rotary = int(self.head_dim * 0.25)
        self.query_key_value = nn.Linear(d, 3 * d)
        self.dense = nn.Linear(d, d)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        qkv = self.query_key_value(x).view(b, t, self.heads, 3 * self.head_dim).permute(0, 2, 1, 3)
        q, k, v = qkv.split(self.head_dim, dim=-1)
        q, k = rotate(q, cos, sin, self.rotary), rotate(k, cos, sin, self.rotary)
        if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            scores = scores.masked_fill(~mask, float("-inf"))
            out = torch.matmul(torch.softmax(scores.float(), dim=-1).to(v.dtype), v)
        return self.dense(out.transpose(1, 2).reshape(b, t, d))


def rotate(x, cos, sin, r):
    rot, rest = x[..., :r], x[..., r:]
    x1, x2 = rot[..., : r // 2], rot[..., r // 2:]
    return torch.cat((rot * cos + torch.cat((-x2, x1), dim=-1) * sin, rest), dim=-1)


class Layer(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(d, eps=1e-5)
        self.post_attention_layernorm = nn.LayerNorm(d, eps=1e-5)
        self.attention = Attention(d, heads)
        self.dense_h_to_4h = nn.Linear(d, 4 * d)
        self.dense_4h_to_h = nn.Linear(4 * d, d)

    def forward(self, x, cos, sin):
        attn = self.attention(self.input_layernorm(x), cos, sin)
        mlp = self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(self.post_attention_layernorm(x))))
        return mlp + attn + x  # parallel residual


class GPTNeoX(nn.Module):
    def __init__(self, layers, d, heads, vocab):
        super().__init__()
        self.embed_in = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(Layer(d, heads) for _ in range(layers))
        self.final_layer_norm = nn.LayerNorm(d, eps=1e-5)
        self.embed_out = nn.Linear(d, vocab, bias=False)
        r = int(d // heads * 0.25)
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, r, 2).float() / r)), False)

    def forward(self, ids):
        freqs = torch.outer(torch.arange(ids.shape[1], dtype=torch.float32), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = self.embed_in(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.embed_out(self.final_layer_norm(x))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", default="160m")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1234)
    layers, d, heads, vocab = SIZES[a.size]
    model = GPTNeoX(layers, d, heads, vocab).train()
    ids = torch.randint(vocab, (a.batch, a.seq), generator=torch.Generator().manual_seed(1))

    forward_s, forward_cpu_s = [], []
    for s in range(a.warmup + a.steps):
        with torch.no_grad():
            t0, c0 = time.perf_counter(), time.process_time()
            model(ids)
            if s >= a.warmup:
                forward_s.append(time.perf_counter() - t0)
                forward_cpu_s.append(time.process_time() - c0)
    forward_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    train_s, train_cpu_s, loss_value = [], [], 0.0
    for s in range(a.warmup + a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        model.zero_grad(set_to_none=True)
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        loss_value = loss.item()
        if s >= a.warmup:
            train_s.append(time.perf_counter() - t0)
            train_cpu_s.append(time.process_time() - c0)
    print(json.dumps({
        "impl": "python", "size": a.size, "batch": a.batch, "seq": a.seq, "threads": a.threads,
        "forward_step_s": forward_s, "train_step_s": train_s, "forward_cpu_s": forward_cpu_s,
        "train_cpu_s": train_cpu_s, "loss": round(loss_value, 6),
        "peak_rss_forward_mb": forward_rss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "torch": torch.__version__}))


if __name__ == "__main__":
    main()
