"""The one training loop, for every objective and task.

Covers: device choice (cuda, then mps, then cpu), fp32 on CPU and bf16 autocast on CUDA, AdamW
with linear warm-up and cosine decay, a tqdm bar, NaN detection, and a checkpoint every
`ckpt_every` steps from which a run resumes exactly (same weights as a run never interrupted),
and the learning curve: a caller's `evaluate` scored at each checkpoint and kept in it.
Leaves out: how a checkpoint is written and read back (checkpoint.py), what is evaluated (the
experiments), gradient accumulation, multiple devices.
"""

import contextlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import CHECKPOINT, save_checkpoint
from .checks import check_int
from .objectives import IGNORE


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 64
    lr: float = 2e-3
    min_lr: float = 1e-4       # where the cosine ends
    warmup: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    ckpt_every: int = 250

    def __post_init__(self):
        for name in ("steps", "batch_size", "ckpt_every"):
            check_int(name, getattr(self, name))
        check_int("warmup", self.warmup, 0)
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be a finite number > 0; got {self.lr!r}")


def pick_device(name: str | None = None) -> torch.device:
    """The named device, or the best one present: cuda, then mps, then cpu."""
    if name is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N or mps")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but this torch sees no CUDA GPU")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' asked for, but this torch sees no Apple GPU")
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; plain fp32 elsewhere (bf16 matmuls are ~100x slower on many CPUs)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over `warmup` steps, then cosine from lr down to min_lr.

    Steps count from 0. Warm-up: lr * (step + 1) / warmup, so step 0 already moves the weights
    and step warmup - 1 reaches lr. Then the cosine: progress = (step - warmup) / (steps -
    warmup), lr_at = min_lr + (lr - min_lr) * (1 + cos(pi * progress)) / 2, progress capped at 1,
    so it reaches min_lr at step == steps. Example: lr 1e-3, min_lr 1e-4, warmup 10, steps 100
    gives 1e-4 at step 0, 1e-3 at step 9, 5.5e-4 at step 55 and 1e-4 at step 100.
    """
    # BEGIN SOLUTION lesson03: the learning rate at `step`, warm-up then cosine
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))
    # END SOLUTION


def loss_of(model, batch):
    """Mean cross-entropy over the positions that have a target."""
    # BEGIN SOLUTION lesson03: the logits of the batch, cross-entropy where a target is set
    logits = model(batch.idx, batch.pos, batch.pattern, key_mask=batch.key_mask,
                   span_pos=batch.span_pos)
    return F.cross_entropy(logits.flatten(0, 1).float(), batch.targets.flatten(),
                           ignore_index=IGNORE)
    # END SOLUTION


def make_optimizer(model, cfg: TrainConfig):
    # weight decay on matrices only: decaying norm gains towards 0 would fight RMSNorm
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=cfg.lr, betas=(0.9, 0.95))


def restore(ckpt: dict, model, opt, gen) -> int:
    """Put a checkpoint's weights, optimizer state and batch generator back; return its step."""
    differ = {k: v for k, v in ckpt["model_config"].items() if asdict(model.cfg).get(k) != v}
    if differ:
        raise ValueError(f"the checkpoint is from another model configuration ({differ}) than "
                         "the model it is resumed into")
    model.load_state_dict(ckpt["model"])
    try:  # the digest covers the weights only: these two are checked by loading them
        opt.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["rng"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
        raise ValueError(f"the checkpoint's optimizer or random-generator state cannot be "
                         f"restored ({type(e).__name__}: {str(e).splitlines()[0][:120]}); it "
                         "was not written by this version of tinyrev's trainer") from None
    return ckpt["step"]


def fit(model, make_batch, cfg: TrainConfig, out_dir, *, device=None, meta=None,
        resume: dict | None = None, progress: bool = True, evaluate=None):
    """Train `model` for cfg.steps steps of `make_batch(generator) -> Batch`.

    `meta` (plain data: task, objective, tokenizer words...) is stored in every checkpoint.
    `resume`: a checkpoint dict from `load_checkpoint`; training continues after its step.
    `evaluate(model) -> dict` (optional) is called at every checkpoint; each result, with its
    step, joins the checkpoint's `curve`, which a resumed run continues: the learning curve.
    Returns the model, trained, on `device`.
    """
    device = device or pick_device()
    model.to(device)
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)  # all batch randomness: order, masks, coins
    start = 0 if resume is None else restore(resume, model, opt, gen)
    curve = [] if resume is None else list(resume.get("curve", []))
    path = Path(out_dir) / CHECKPOINT
    last_saved = start if resume is not None else None  # for the message if training diverges
    model.train()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress,
               desc="train", dynamic_ncols=True)
    running = None
    for step in bar:
        batch = make_batch(gen).to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        with autocast(device):
            loss = loss_of(model, batch)
        # BEGIN SOLUTION lesson03: the gradients: clear, backpropagate, clip to cfg.grad_clip
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip).item()
        # END SOLUTION
        value = loss.item()  # one sync per step buys a check before the weights are touched
        if not (math.isfinite(value) and math.isfinite(norm)):
            bar.close()
            kept = "no checkpoint was due yet" if last_saved is None else \
                f"{path} (step {last_saved}) is kept"
            raise FloatingPointError(f"training diverged at step {step} (loss {value}, gradient "
                                     f"norm {norm}); it stopped and {kept}. Try a lower --lr.")
        opt.step()
        running = value if running is None else 0.95 * running + 0.05 * value
        if step % 10 == 0:
            bar.set_postfix(loss=f"{running:.3f}")
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            if evaluate is not None:
                curve.append({"step": step + 1, **evaluate(model)})
                model.train()  # scoring leaves the model in eval mode
            save_checkpoint(path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                   "step": step + 1, "model_config": asdict(model.cfg),
                                   "train_config": asdict(cfg), "rng": gen.get_state(),
                                   "meta": meta or {}, "curve": curve})
            last_saved = step + 1
    return model
