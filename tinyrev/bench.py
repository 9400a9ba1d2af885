"""Training speed on this machine: `python -m tinyrev.bench`.

Covers: this device's fp32 matmul peak (the best median GFLOP/s over two square sizes), and
training throughput at one fixed shape (d=128, 4 layers, 4 heads, vocabulary 512, batch 64 x 64
tokens, AdamW, causal mask) as tokens/s and as a share of that peak. A shared CPU's speed drifts
from second to second, so the two are measured in alternating rounds and the medians reported.
Leaves out: evaluation and decoding speed.

FLOPs per token follow the usual estimate (Kaplan et al., as in nanoGPT and PaLM): 6 per
parameter that multiplies (every weight except the embedding lookup) for forward and backward,
plus 12 * layers * T * d for the attention scores and their weighted sums.
"""

import argparse
import json
import statistics
import time

import torch

from .model import ModelConfig, Transformer
from .objectives import Batch
from .trainer import TrainConfig, autocast, loss_of, make_optimizer, pick_device

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


def train_step(device):
    """A training step at the fixed shape, and the model FLOPs it performs."""
    B, T = SHAPE["batch"], SHAPE["seq"]
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=SHAPE["vocab_size"], dim=SHAPE["dim"], n_layers=SHAPE["n_layers"],
                      n_heads=SHAPE["n_heads"])
    model = Transformer(cfg).to(device)
    opt = make_optimizer(model, TrainConfig())
    tokens = torch.randint(0, cfg.vocab_size, (B, T + 1), device=device)
    batch = Batch(tokens[:, :-1], tokens[:, 1:], torch.arange(T, device=device))

    def step():
        with autocast(device):
            loss = loss_of(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    n_mult = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("embed"))
    return step, (6 * n_mult + 12 * cfg.n_layers * T * cfg.dim) * B * T


def measure(device, rounds: int = 7) -> dict:
    step, flops = train_step(device)
    peaks, seconds = [], []
    for _ in range(rounds):
        peaks.append(matmul_peak(device))
        seconds.append(_median_seconds(step, 3, device, warmup=1))
    peak, s = statistics.median(peaks), statistics.median(seconds)
    return {"peak_gflops": peak, "step_ms": 1000 * s, "tokens_per_s": SHAPE["batch"] * SHAPE["seq"] / s,
            "gflops": flops / s / 1e9, "share_of_peak": flops / s / 1e9 / peak}


def main():
    p = argparse.ArgumentParser(prog="python -m tinyrev.bench", description=__doc__.splitlines()[0])
    p.add_argument("--device", help="cpu, cuda or mps (default: the best one present)")
    p.add_argument("--rounds", type=int, default=7, help="alternating rounds (medians reported)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args()
    device = pick_device(args.device)
    r = measure(device, args.rounds)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"medians of {args.rounds} rounds")
    print(f"fp32 matmul peak          {r['peak_gflops']:8.1f} GFLOP/s")
    print("training (d=128, 4 layers, 4 heads, vocab 512, batch 64 x 64, AdamW, causal)")
    print(f"  step                    {r['step_ms']:8.1f} ms")
    print(f"  throughput              {r['tokens_per_s']:8.0f} tokens/s")
    print(f"  model FLOP rate         {r['gflops']:8.1f} GFLOP/s = {100 * r['share_of_peak']:.0f}% of peak")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), **r}, f, indent=2)


if __name__ == "__main__":
    main()
