"""A run directory and its checkpoint: written atomically, read back safely, never trained over.

Covers: `save_checkpoint` and `write_json` (each a temporary file of this process's own, fsync,
rename: `write_atomically`; a checkpoint carries a `digest` of its weights),
`load_checkpoint` (tensors and plain data only, with a clear error for anything that is not a
tinyrev checkpoint of this version, and for weights that changed on disk after writing),
`check_fresh` (a saved run is resumed, never overwritten), `claim` (one process at a time
trains into a directory) and `load_model` (a run's model, of the task asked for).
Every experiment stores its runs this way; what each keeps in `meta` is its own business.
Leaves out: the loop that writes checkpoints (trainer.py).
"""

import contextlib
import ctypes
import hashlib
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

import torch

from .checks import check_folder
from .model import ModelConfig, Transformer

CHECKPOINT = "ckpt.pt"
CLAIM = "train.pid"  # present while a process trains into the directory; holds its process id


def write_atomically(path, write):
    """`write(file)` into a temporary file, flush it to disk, then rename: a crash never leaves
    half a file, and a failed write leaves the file as it was and no temporary one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two writers never share one
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch's writer says a full disk as a RuntimeError
        tmp.unlink(missing_ok=True)
        why = e.strerror if isinstance(e, OSError) and e.strerror else "is the disk full?"
        raise ValueError(f"could not write {path} ({why}); {path.name} as it was before is "
                         "kept") from None


def digest(weights: dict) -> str:
    """SHA-256 over a state dict's names, dtypes, shapes and raw bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(weights):
        t = weights[name].detach().cpu().contiguous()
        h.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
        # the tensor's memory as it is, read in place (no copy through Python numbers)
        h.update(ctypes.string_at(t.data_ptr(), t.numel() * t.element_size()))
    return h.hexdigest()


def save_checkpoint(path, payload: dict):
    """`payload` (weights under "model") with the digest of its weights, written atomically."""
    payload = {**payload, "digest": digest(payload["model"])}
    write_atomically(path, lambda f: torch.save(payload, f))


def write_json(path, data):
    """`data` as indented JSON, written atomically. NaN and infinity are refused: they are not
    JSON, and a result that holds them comes from a model whose weights are not finite."""
    try:
        text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    except ValueError:
        raise ValueError(f"not writing {path}: the results hold NaN or infinity, which JSON "
                         "cannot hold (are the model's weights finite?)") from None
    write_atomically(path, lambda f: f.write(text.encode()))


def run_dir(path) -> Path:
    """The run directory a path names: the folder holding it when it is a checkpoint file, else
    the path itself (a directory, or nothing yet: loading it then says so by its own name)."""
    path = Path(path)
    return path.parent if path.is_file() else path


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
    needed = {"model", "optimizer", "step", "model_config", "train_config", "rng", "meta",
              "digest"}
    missing = sorted(needed - set(ckpt)) if isinstance(ckpt, dict) else ["everything"]
    if missing:
        raise ValueError(f"{file} is not a tinyrev checkpoint of this version (it lacks "
                         f"{missing})")
    for key in ("model", "model_config", "train_config", "meta"):
        if not isinstance(ckpt[key], dict):
            raise ValueError(f"{file}: its {key!r} is a {type(ckpt[key]).__name__}, not a dict; "
                             "it was not written by this version of tinyrev")
    if not all(isinstance(t, torch.Tensor) for t in ckpt["model"].values()) or \
            digest(ckpt["model"]) != ckpt["digest"]:
        raise ValueError(f"{file} is damaged: its weights differ from the digest written with "
                         "them (the file changed on disk after training wrote it); use a copy, "
                         "or train the run again")
    if not all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point()):
        raise ValueError(f"{file} holds weights that are not finite (NaN or infinity); the trainer "
                         "stops before a NaN reaches the weights, so they were changed after "
                         "training; use another copy, or train the run again")
    step, steps = ckpt["step"], ckpt["train_config"].get("steps")
    if not (type(step) is int and type(steps) is int and 0 < step <= steps):
        raise ValueError(f"{file}: its stored step {step!r} is not in 1..{steps!r}, the steps the "
                         "run was set to train; it was not written by tinyrev's trainer")
    return ckpt


def config_of(cls, stored: dict, where):
    """A config dataclass from a checkpoint's dict, refusing keys this version does not know."""
    unknown = sorted(set(stored) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"{where}: its {cls.__name__} has {unknown}, unknown to this version of "
                         "tinyrev; it comes from another version")
    try:
        return cls(**stored)
    except (TypeError, ValueError) as e:  # a setting missing, or one its config refuses
        raise ValueError(f"{where}: its stored {cls.__name__} is not valid ({e}); it was not "
                         "written by this version of tinyrev") from None


def check_fresh(out_dir, resume):
    """Refuse to train over a saved run unless asked to resume it, or into a path that is no
    folder."""
    check_folder(out_dir, "the run directory")
    if resume is None and (Path(out_dir) / CHECKPOINT).exists():
        raise ValueError(f"{out_dir} already holds a trained run; continue it with --resume "
                         f"{out_dir}, or give another --out (nothing was overwritten)")


@contextlib.contextmanager
def claim(out_dir):
    """Hold `out_dir` for this process while it trains: a second process aiming at the same
    directory is refused at once. A claim whose process no longer runs (killed) is taken over."""
    out = Path(out_dir)
    mine, tmp = out / CLAIM, out / f"{CLAIM}.{os.getpid()}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp.write_text(str(os.getpid()))
        try:
            for _ in range(2):
                try:
                    os.link(tmp, mine)  # atomic: fails while another process holds the claim
                    break
                except FileExistsError:
                    holder = _holder(out)
                    if holder is not None:
                        raise ValueError(f"{out} is being trained into by another process (pid "
                                         f"{holder}); wait for it, or give another --out") from None
                    mine.unlink(missing_ok=True)  # its process is gone: take the claim over
            else:  # another process took it over first
                raise ValueError(f"{out} is being trained into by another process; wait for it, "
                                 "or give another --out")
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:
        raise ValueError(f"cannot train into {out}: {e.strerror or e} ({e.filename or out})") \
            from None
    try:
        yield out
    finally:
        mine.unlink(missing_ok=True)


def _holder(out_dir) -> int | None:
    """The id of the process training into `out_dir`, or None: no claim, a claim that holds no
    process id (written by hand, cut short), or one whose process is gone (killed)."""
    try:
        pid = int((Path(out_dir) / CLAIM).read_text())
    except (OSError, ValueError):
        return None
    if pid <= 0:  # 0 and negative ids name process groups, never one process
        return None
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except PermissionError:  # it exists, under another user
        return pid
    except (OSError, OverflowError):
        return None
    return pid


def load_model(path, task: str, device=None):
    """(model, checkpoint) of a run directory trained on `task` ("reversal" or "length")."""
    ckpt = load_checkpoint(path)
    found = ckpt["meta"].get("task")
    if found not in ("reversal", "length"):
        raise ValueError(f"{path}: its checkpoint names no task this version of tinyrev knows "
                         f"(task {found!r}); it comes from another version")
    if found != task:
        raise ValueError(f"{path} holds a {found!r} run, not a {task!r} run (train one with "
                         f"train.py --task {task}, or evaluate this one with eval.py --task "
                         f"{found})")
    model = Transformer(config_of(ModelConfig, ckpt["model_config"], path))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError:
        raise ValueError(f"{path}: the weights do not match the model configuration stored "
                         f"with them ({ckpt['model_config']})") from None
    holder = _holder(run_dir(path))
    if holder is not None:
        print(f"note: {path} is still being trained (pid {holder}); this reads its last "
              f"checkpoint, step {ckpt['step']} of {ckpt['train_config']['steps']}",
              file=sys.stderr)
    return model.to(device or "cpu"), ckpt


