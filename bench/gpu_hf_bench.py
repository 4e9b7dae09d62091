#!/usr/bin/env python3
"""The Python side of bench/gpu.sh, on the same GPU in the same run: the training step and
the probe of a Pythia-shaped GPT-NeoX as a PyTorch user would run them.
  --impl hf      Hugging Face transformers' GPTNeoXForCausalLM (random init, its default
                 attention implementation); without transformers the JSON says so.
  --impl plain   the same model in plain PyTorch (model_forward_backward.py's GPTNeoX:
                 nn.Linear / nn.LayerNorm / nn.Embedding, SDPA attention, logits ->
                 F.cross_entropy), which needs nothing but torch.
  --compile      torch.compile the model first (compilation happens in the warmup steps);
                 when it fails the JSON says why.
  --mode train   zero_grad, forward + loss under torch.autocast(bfloat16) on float32
                 weights, backward, clip_grad_norm_(1.0), AdamW(fused) step: the step
                 quantfork's trainer takes.
  --mode probe   quant_bench.py's probe (FP32, INT4 and INT8 perplexities with weight
                 statistics, float32, TF32 off) on --sequences x --seq random tokens.
Prints one JSON object, also when something is unavailable ("error"; exit status 0), so
that gpu.sh reports every row."""
import argparse
import json
import os
import sys
import time
import types

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_forward_backward import GPTNeoX, SIZES  # noqa: E402
from quant_bench import probe  # noqa: E402


def hf_model(layers, d, heads, vocab):
    import transformers
    config = transformers.GPTNeoXConfig(
        vocab_size=vocab, hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=4 * d, max_position_embeddings=2048, hidden_act="gelu",
        use_parallel_residual=True, tie_word_embeddings=False)
    model = transformers.GPTNeoXForCausalLM(config)
    info = {"transformers": transformers.__version__,
            "attention": getattr(model.config, "_attn_implementation", "?")}
    return model, info


class HfForProbe(torch.nn.Module):
    """HF's model as quant_bench.probe expects one: ids -> logits, and .layers whose items
    have attention.query_key_value, attention.dense, dense_h_to_4h and dense_4h_to_h."""

    def __init__(self, hf):
        super().__init__()
        self.hf = hf
        self.layers = [types.SimpleNamespace(attention=layer.attention, dense_h_to_4h=layer.mlp.dense_h_to_4h,
                                             dense_4h_to_h=layer.mlp.dense_4h_to_h)
                       for layer in hf.gpt_neox.layers]

    def forward(self, ids):
        return self.hf(input_ids=ids, use_cache=False).logits


def train(model, loss_of, ids, steps, warmup):
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.1, fused=True)
    step_s, loss = [], None
    for s in range(warmup + steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_of(ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        torch.cuda.synchronize()
        if s >= warmup:
            step_s.append(time.perf_counter() - t0)
    return {"step_s": step_s, "loss": round(loss.item(), 5)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--impl", choices=("hf", "plain"), default="hf")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--mode", choices=("train", "probe"), default="train")
    p.add_argument("--size", default="160m")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--sequences", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    out = {"impl": "python-" + a.impl, "variant": "compile" if a.compile else "eager", "mode": a.mode,
           "size": a.size, "batch": a.batch, "seq": a.seq, "torch": torch.__version__}
    try:
        if not torch.cuda.is_available():
            raise RuntimeError(f"torch {torch.__version__} sees no CUDA device")
        # model_forward_backward.GPTNeoX builds its rotary tables on the default device.
        torch.set_default_device("cuda")
        torch.manual_seed(1234)
        layers, d, heads, vocab = SIZES[a.size]
        out.update(layers=layers, hidden=d, vocab=vocab)
        if a.impl == "hf":
            try:
                model, info = hf_model(layers, d, heads, vocab)
            except ImportError as e:
                raise RuntimeError(f"transformers is not importable ({e}); pip install transformers") from e
            out.update(info)
        else:
            model = GPTNeoX(layers, d, heads, vocab)
        model = model.to("cuda")
        out["params"] = sum(p.numel() for p in model.parameters())
        runnable = torch.compile(model) if a.compile else model
        if a.mode == "train":
            model.train()
            gen = torch.Generator(device="cpu").manual_seed(1)
            ids = torch.randint(vocab, (a.batch, a.seq), generator=gen, device="cpu").to("cuda")
            if a.impl == "hf":
                def loss_of(x):
                    return runnable(input_ids=x, labels=x, use_cache=False).loss
            else:
                def loss_of(x):
                    logits = runnable(x)
                    return F.cross_entropy(logits[:, :-1].reshape(-1, vocab), x[:, 1:].reshape(-1))
            out.update(train(model, loss_of, ids, a.steps, a.warmup))
        else:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            model.eval()
            target = HfForProbe(model) if a.impl == "hf" else model
            if a.compile:  # the compiled module hands .layers through to the original
                target = torch.compile(target)
            gen = torch.Generator(device="cpu").manual_seed(1)
            windows = torch.randint(vocab, (a.sequences, a.seq + 1), generator=gen, device="cpu").to("cuda")
            probe_s = []
            with torch.no_grad():
                for r in range(a.rounds + 1):  # the first round warms up (and compiles)
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    out["ppl"] = probe(target, windows, 4)
                    torch.cuda.synchronize()
                    if r > 0:
                        probe_s.append(time.perf_counter() - t0)
            out.update(sequences=a.sequences, probe_s=probe_s)
        free, total = torch.cuda.mem_get_info()
        out["device_used_mb"] = (total - free) >> 20
        out["max_allocated_mb"] = torch.cuda.max_memory_allocated() >> 20
    except Exception as e:  # noqa: BLE001 - any failure is one row of the report
        out["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
