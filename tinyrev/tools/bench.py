"""Training and decoding speed on this machine: `python -m tinyrev.tools.bench`.

Covers: this device's fp32 matmul peak (the best median GFLOP/s over two square sizes), and
training throughput at one fixed shape (d=128, 4 layers, 4 heads, vocabulary 512, batch 64 x 64
tokens, AdamW, causal mask) as tokens/s, as a share of that peak, and against a plain GPT of the
same shape written here in a few lines (GPT-2 as nanoGPT writes it: learned positions, LayerNorm,
a GELU MLP, tied head; no bias, no dropout). A shared CPU's speed drifts from second to second,
so the three are measured in alternating rounds and the medians reported.
Then the arithmetic that bounds the reversal experiment: the model FLOPs of one default run of
each objective and of the five-seed table, and the least time they take at that peak.
Then decoding up to 16 384 tokens with the full KV cache against Λ's bounded cache and
StreamingLLM's (lesson 04), side by side in the same run: tokens/s over [1, 1024) and each
doubling after it, and the cache's memory.
Leaves out: evaluation speed, and decoding with trained weights (speed does not depend on them).

FLOPs per token follow the usual estimate (Kaplan et al., as in nanoGPT and PaLM): 6 per
parameter that multiplies (every weight except the embedding lookup) for forward and backward,
plus 12 * layers * T * d for the attention scores and their weighted sums.
"""

import statistics
import time
from dataclasses import asdict

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from .. import cli, objectives
from ..attention import Pattern
from ..checkpoint import write_json
from ..length.methods import modes
from ..model import KVCache, ModelConfig, Transformer, generate
from ..objectives import Batch
from ..reversal.experiment import data_of
from ..reversal.facts import FactsConfig
from ..trainer import TrainConfig, autocast, loss_of, make_optimizer, pick_device

SHAPE = {"dim": 128, "n_layers": 4, "n_heads": 4, "vocab_size": 512, "batch": 64, "seq": 64}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_seconds(fn, repeats, device, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_peak(device, sizes=(512, 1024)) -> float:
    """Best median fp32 GFLOP/s of an n x n matmul over `sizes`."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        best = max(best, 2 * n ** 3 / _median_seconds(lambda: a @ b, 5, device, warmup=1) / 1e9)
    return best


class PlainBlock(nn.Module):
    def __init__(self, dim, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.ln1, self.ln2 = nn.LayerNorm(dim, bias=False), nn.LayerNorm(dim, bias=False)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim, bias=False), nn.Linear(dim, dim, bias=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim, bias=False), nn.GELU(),
                                 nn.Linear(4 * dim, dim, bias=False))

    def forward(self, x):
        q, k, v = rearrange(self.qkv(self.ln1(x)), "b t (n h d) -> n b h t d", n=3, h=self.n_heads)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(rearrange(y, "b h t d -> b t (h d)"))
        return x + self.mlp(self.ln2(x))


class PlainGPT(nn.Module):
    """The baseline: GPT-2 as nanoGPT writes it, at SHAPE, without bias or dropout."""

    def __init__(self):
        super().__init__()
        d, vocab = SHAPE["dim"], SHAPE["vocab_size"]
        self.embed, self.pos_embed = nn.Embedding(vocab, d), nn.Embedding(SHAPE["seq"], d)
        self.blocks = nn.ModuleList(PlainBlock(d, SHAPE["n_heads"])
                                    for _ in range(SHAPE["n_layers"]))
        self.norm, self.head = nn.LayerNorm(d, bias=False), nn.Linear(d, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, idx, *_, **__):  # loss_of also passes positions, pattern, masks: unused
        x = self.embed(idx) + self.pos_embed(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def train_step(device, plain: bool = False):
    """A training step at the fixed shape (of tinyrev, or of PlainGPT), and the model it trains.
    Both run the same optimizer, loss and batch."""
    B, T = SHAPE["batch"], SHAPE["seq"]
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=SHAPE["vocab_size"], dim=SHAPE["dim"], n_layers=SHAPE["n_layers"],
                      n_heads=SHAPE["n_heads"])
    model = (PlainGPT() if plain else Transformer(cfg)).to(device)
    opt = make_optimizer(model, TrainConfig())
    tokens = torch.randint(0, cfg.vocab_size, (B, T + 1), device=device)
    batch = Batch(tokens[:, :-1], tokens[:, 1:], torch.arange(T, device=device))

    def step():
        with autocast(device):
            loss = loss_of(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, model


def flops_per_token(model: Transformer, T: int) -> float:
    """Training FLOPs per token at sequence length T, the estimate in this module's docstring:
    6 per multiplying weight (every one but the embedding lookups) plus 12 * layers * T * d."""
    n_mult = sum(p.numel() for name, p in model.named_parameters() if "embed" not in name)
    return 6 * n_mult + 12 * model.cfg.n_layers * T * model.cfg.dim


def reversal_run_flops(objective: str = "ntp", n_batches: int = 200) -> float:
    """Model FLOPs of one default reversal run (generated facts, TrainConfig's steps and batch
    size), from the mean shape of `n_batches` batches of `objective`, padding included."""
    data = data_of({"facts": asdict(FactsConfig())})
    make, cfg = objectives.get(objective), TrainConfig()
    model = Transformer(ModelConfig(vocab_size=len(data.tokenizer),
                                    span_positions=make.span_positions))
    gen, shapes = torch.Generator().manual_seed(0), []
    for _ in range(n_batches):
        pick = torch.randint(len(data.train), (cfg.batch_size,), generator=gen).tolist()
        shapes.append(make([data.train[i] for i in pick], gen).idx.shape)
    B, T = (statistics.mean(shape[k] for shape in shapes) for k in (0, 1))
    return flops_per_token(model, T) * B * T * cfg.steps


def measure(device, rounds: int = 7) -> dict:
    (step, model), (plain, _) = train_step(device), train_step(device, plain=True)
    flops = flops_per_token(model, SHAPE["seq"]) * SHAPE["batch"] * SHAPE["seq"]
    peaks, seconds, plain_seconds = [], [], []
    for _ in range(rounds):
        peaks.append(matmul_peak(device))
        seconds.append(_median_seconds(step, 3, device, warmup=1))
        plain_seconds.append(_median_seconds(plain, 3, device, warmup=1))
    peak, s = statistics.median(peaks), statistics.median(seconds)
    return {"peak_gflops": peak, "step_ms": 1000 * s,
            "tokens_per_s": SHAPE["batch"] * SHAPE["seq"] / s,
            "gflops": flops / s / 1e9, "share_of_peak": flops / s / 1e9 / peak,
            "plain_gpt_step_ms": 1000 * statistics.median(plain_seconds),
            "vs_plain_gpt": statistics.median(p / t for p, t in zip(plain_seconds, seconds)),
            "reversal_run_tflop": {o: reversal_run_flops(o) / 1e12 for o in objectives.OBJECTIVES}}


def decode(device, n_tokens: int = 16384, n_global: int = 4, n_local: int = 64,
           chunk: int = 128) -> dict:
    """Greedy decoding from a one-token prompt to `n_tokens`: full cache, Λ's and StreamingLLM's
    (4 sinks and a window of n_local - 4, positions counted in the cache).

    Returns, per cache, tokens/s over [1, 1024), then each doubling [n/2, n), and the cache's bytes
    at its end. The caches take turns every `chunk` tokens, so that a shared CPU's drift, or
    another job, slows them alike and the ratios hold.
    """
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=SHAPE["vocab_size"], dim=SHAPE["dim"], n_layers=SHAPE["n_layers"],
                      n_heads=SHAPE["n_heads"])
    model = Transformer(cfg).to(device).eval()
    streaming = modes(n_local, n_global=n_global, read_len=n_tokens)["streaming_llm"]
    runs = {"full": (Pattern("causal"), KVCache(cfg.n_layers)),
            "lambda": (Pattern("lambda", n_global=n_global, n_local=n_local),
                       KVCache(cfg.n_layers, n_global=n_global, n_local=n_local)),
            "streaming_llm": (streaming, KVCache.for_pattern(cfg.n_layers, streaming))}
    last = {name: torch.zeros(1, 1, dtype=torch.long, device=device) for name in runs}
    ends = [2 ** k for k in range(10, n_tokens.bit_length()) if 2 ** k <= n_tokens]
    result = {name: {"length": ends, "tokens_per_s": [], "cache_bytes": []} for name in runs}
    done = 1
    for end in ends:
        seconds = dict.fromkeys(runs, 0.0)
        for start in range(done, end, chunk):
            for name, (pattern, cache) in runs.items():
                _sync(device)
                t = time.perf_counter()
                with autocast(device):
                    out = generate(model, last[name], min(chunk, end - start), pattern=pattern,
                                   cache=cache)
                _sync(device)
                seconds[name] += time.perf_counter() - t
                last[name] = out[:, -1:]
        for name, (_, cache) in runs.items():
            result[name]["tokens_per_s"].append((end - done) / seconds[name])
            result[name]["cache_bytes"].append(cache.nbytes())
        done = end
    return result


def main():
    p = cli.Parser(prog="python -m tinyrev.tools.bench", description=__doc__.splitlines()[0])
    p.add_argument("--device", help="cpu, cuda or mps (default: the best one present)")
    p.add_argument("--rounds", type=cli.positive_int, default=7,
                   help="alternating rounds (medians reported)")
    p.add_argument("--decode-to", type=cli.positive_int, default=16384, metavar="N",
                   help="decoding benchmark length, a power of two >= 1024 (default: 16384)")
    p.add_argument("--threads", type=cli.positive_int,
                   help="torch threads (default: torch's own choice); decoding at batch 1 is "
                        "mostly small operations, and its speed-up depends on this count")
    p.add_argument("--json", metavar="PATH", type=cli.output_file,
                   help="also write the figures as JSON")
    args = p.parse_args()
    if args.decode_to < 1024 or args.decode_to & (args.decode_to - 1):
        p.error(f"--decode-to must be a power of two >= 1024; got {args.decode_to}")
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    r = measure(device, args.rounds)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"medians of {args.rounds} rounds")
    print(f"fp32 matmul peak          {r['peak_gflops']:8.1f} GFLOP/s")
    print("training (d=128, 4 layers, 4 heads, vocab 512, batch 64 x 64, AdamW, causal)")
    print(f"  step                    {r['step_ms']:8.1f} ms")
    print(f"  throughput              {r['tokens_per_s']:8.0f} tokens/s")
    print(f"  model FLOP rate         {r['gflops']:8.1f} GFLOP/s = "
          f"{100 * r['share_of_peak']:.0f}% of peak")
    print(f"  plain GPT, same shape   {r['plain_gpt_step_ms']:8.1f} ms a step; tinyrev runs at "
          f"{r['vs_plain_gpt']:.2f}x its speed (> 1: faster)")
    run, peak = r["reversal_run_tflop"], r["peak_gflops"] * 1e9
    table = 5 * sum(run.values())
    print(f"a default reversal run    {run['ntp']:8.1f} TFLOP (ntp; "
          f"{', '.join(f'{o} {t:.1f}' for o, t in run.items() if o != 'ntp')}): "
          f"{run['ntp'] * 1e12 / peak:.0f} s at the whole peak")
    print(f"the five-seed table       {table:8.1f} TFLOP: {table * 1e12 / peak / 60:.1f} min at the "
          "whole peak")
    d = decode(device, args.decode_to)
    print("greedy decoding, batch 1, same shape: full KV cache vs Λ cache (n_global 4, n_local 64) "
          "vs StreamingLLM's (4 sinks, window 60)")
    print("  tokens            full tok/s   Λ tok/s   speed-up   StreamingLLM tok/s   full cache MB"
          "   Λ cache MB   StreamingLLM MB")
    ends = d["full"]["length"]
    names = ("full", "lambda", "streaming_llm")
    for k, (start, n) in enumerate(zip([1] + ends[:-1], ends)):  # the first stretch starts at 1
        f, lam, st = (d[name]["tokens_per_s"][k] for name in names)
        fb, lb, sb = (d[name]["cache_bytes"][k] / 2 ** 20 for name in names)
        print(f"  {f'[{start}, {n})':16}{f:12.0f}{lam:10.0f}{lam / f:10.2f}x{st:21.0f}"
              f"{fb:16.2f}{lb:13.2f}{sb:18.2f}")
    if args.json:
        write_json(args.json, {"device": str(device), "threads": torch.get_num_threads(), **r,
                               "decode": d})


if __name__ == "__main__":
    cli.run(main, "python -m tinyrev.tools.bench")
