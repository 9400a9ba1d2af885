"""A run directory and its checkpoint: written atomically, read back safely, never trained over.

Covers: `save_checkpoint` (temporary file, fsync, rename), `load_checkpoint` (tensors and plain
data only, with a clear error for anything that is not a tinyrev checkpoint), `check_fresh` (a
saved run is resumed, never overwritten) and `load_model` (a run's model, of the task asked for).
Every experiment stores its runs this way; what each keeps in `meta` is its own business.
Leaves out: the loop that writes checkpoints (trainer.py).
"""

import os
from pathlib import Path

import torch

from .model import ModelConfig, Transformer

CHECKPOINT = "ckpt.pt"


def save_checkpoint(path, payload: dict):
    """Write a temporary file, flush it to disk, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path) -> dict:
    """Load a run's checkpoint (a run directory or the file itself), tensors and plain data only."""
    path = Path(path)
    file = path / CHECKPOINT if path.is_dir() else path
    if not file.exists():
        raise ValueError(f"no tinyrev checkpoint at {path} (expected a run directory holding "
                         f"{CHECKPOINT}, or the file itself)")
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{file} is not a readable tinyrev checkpoint "
                         f"({type(e).__name__})") from None
    needed = {"model", "optimizer", "step", "model_config", "train_config", "rng", "meta"}
    missing = sorted(needed - set(ckpt)) if isinstance(ckpt, dict) else ["everything"]
    if missing:
        raise ValueError(f"{file} is not a tinyrev checkpoint (it lacks {missing})")
    return ckpt


def check_fresh(out_dir, resume):
    """Refuse to train over a saved run unless asked to resume it."""
    if resume is None and (Path(out_dir) / CHECKPOINT).exists():
        raise ValueError(f"{out_dir} already holds a trained run; continue it with --resume "
                         f"{out_dir}, or give another --out (nothing was overwritten)")


def load_model(run_dir, task: str, device=None):
    """(model, checkpoint) of a run directory trained on `task` ("reversal" or "length")."""
    ckpt = load_checkpoint(run_dir)
    found = ckpt["meta"].get("task")
    if found != task:
        raise ValueError(f"{run_dir} holds a {found!r} run, not a {task!r} run (train one with "
                         f"train.py --task {task}, or evaluate this one with eval.py --task "
                         f"{found})")
    model = Transformer(ModelConfig(**ckpt["model_config"]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError:
        raise ValueError(f"{run_dir}: the weights do not match the model configuration stored "
                         f"with them ({ckpt['model_config']})") from None
    return model.to(device or "cpu"), ckpt


