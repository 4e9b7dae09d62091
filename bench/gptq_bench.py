#!/usr/bin/env python3
"""The Python side of gptq_bench.sh: sequential GPTQ of a Pythia-shaped GPT-NeoX (the
model of model_forward_backward.py, random weights) with the authors' own code, their
`GPTQ` class and `Quantizer` (IST-DASLab/gptq: gptq.py, quant.py, imported unmodified from
--gptq-ref DIR, a checkout the user provides), driven as their opt.py's opt_sequential
drives it: windows fed one at a time, forward hooks calling add_batch, fasterquant per
Linear, the quantized layer run again for the next layer's inputs. Prints one JSON
object. Run with Debian's /usr/bin/python3 (python3-torch)."""
import argparse
import json
import os
import resource
import sys
import time
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_forward_backward import SIZES, GPTNeoX  # noqa: E402


def import_reference(ref):
    # gptq.py imports transformers only for an isinstance() check against Conv1D.
    stub = types.ModuleType("transformers")
    stub.Conv1D = type("Conv1D", (), {})
    sys.modules.setdefault("transformers", stub)
    torch.cuda.synchronize = lambda *a, **k: None  # fasterquant times itself with it
    sys.path.insert(0, ref)
    import gptq  # noqa: E402
    import quant  # noqa: E402
    return gptq.GPTQ, quant.Quantizer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--gptq-ref", required=True)
    p.add_argument("--size", default="160m")
    p.add_argument("--sequences", type=int, default=128)
    p.add_argument("--seq", type=int, default=2048, help="tokens per calibration window")
    p.add_argument("--layers", type=int, default=0, help="quantize the first N layers (0: all)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    GPTQ, Quantizer = import_reference(a.gptq_ref)
    torch.manual_seed(1234)
    n_layers, d, heads, vocab = SIZES[a.size]
    model = GPTNeoX(n_layers, d, heads, vocab).eval()
    ids = torch.randint(vocab, (a.sequences, a.seq), generator=torch.Generator().manual_seed(1))
    layers = a.layers or n_layers
    t0 = time.perf_counter()
    with torch.no_grad():
        freqs = torch.outer(torch.arange(a.seq, dtype=torch.float32), model.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        inps = model.embed_in(ids)
        outs = torch.zeros_like(inps)
        for layer in model.layers[:layers]:
            subset = {"attention.query_key_value": layer.attention.query_key_value,
                      "attention.dense": layer.attention.dense,
                      "dense_h_to_4h": layer.dense_h_to_4h,
                      "dense_4h_to_h": layer.dense_4h_to_h}
            g = {}
            for name, lin in subset.items():
                g[name] = GPTQ(lin)
                g[name].quantizer = Quantizer()
                g[name].quantizer.configure(4, perchannel=True, sym=False, mse=False)
            handles = [lin.register_forward_hook(
                (lambda n: lambda m, i, o: g[n].add_batch(i[0].data, o.data))(name))
                for name, lin in subset.items()]
            for j in range(a.sequences):
                outs[j] = layer(inps[j].unsqueeze(0), cos, sin)[0]
            for h in handles:
                h.remove()
            for name in subset:
                g[name].fasterquant(blocksize=128, percdamp=0.01, groupsize=128, actorder=False)
                g[name].free()
            for j in range(a.sequences):
                outs[j] = layer(inps[j].unsqueeze(0), cos, sin)[0]
            inps, outs = outs, inps
    seconds = time.perf_counter() - t0
    print(json.dumps({"impl": "python_reference", "size": a.size, "layers": layers,
                      "sequences": a.sequences, "seq": a.seq, "threads": a.threads,
                      "seconds": seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))


if __name__ == "__main__":
    main()
