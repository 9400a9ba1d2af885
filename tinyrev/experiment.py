"""One reversal-curse run, end to end: data, model, objective, training, evaluation, results.json.

Covers: what `train.py` and `eval.py` share: building a run from its settings, training it,
loading it back from its directory and scoring it; the run-directory checks the length task
reuses. Leaves out: argument parsing (the scripts), the loop itself (trainer.py) and the length
task (length.py).
"""

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from . import facts, objectives
from .evaluate import reversal_scores
from .model import ModelConfig, Transformer
from .trainer import CHECKPOINT, TrainConfig, fit, load_checkpoint, pick_device

SPAN_POSITIONS = 64  # ABI's learned span offsets: more than any sentence here is long


def model_config(objective: str, vocab_size: int) -> ModelConfig:
    span = SPAN_POSITIONS if objective == "abi" else 0
    return ModelConfig(vocab_size=vocab_size, span_positions=span)


def data_of(meta: dict) -> facts.ReversalData:
    """A run's data: built from the facts files stored with it, or generated again from its settings."""
    if "facts_files" in meta:
        return facts.build(meta["facts_files"])
    return facts.generate(facts.FactsConfig(**meta["facts"]))


def train_reversal(objective: str, out_dir, *, train_cfg: TrainConfig = TrainConfig(),
                   facts_cfg: facts.FactsConfig = facts.FactsConfig(),
                   facts_files: dict | None = None, device=None,
                   resume: dict | None = None, progress: bool = True) -> dict:
    """Train one objective, score it, write results.json; return results.

    The data is generated from `facts_cfg`, or built from `facts_files` (a facts folder as
    `factsio.read` returns it), which the checkpoint then keeps: the run stays evaluable after
    the folder is moved, edited or deleted.
    """
    make = objectives.get(objective)
    check_fresh(out_dir, resume)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    source = {"facts": asdict(facts_cfg)} if facts_files is None else {"facts_files": facts_files}
    data = data_of(source)
    longest = max(len(it.target) for items in data.tests.values() for it in items)
    if objective == "abi" and longest + 2 > SPAN_POSITIONS:  # offsets 0 and [START]'s take two
        raise ValueError(f"a test answer of {longest} words is longer than ABI's learned span "
                         f"offsets allow ({SPAN_POSITIONS - 2} words)")
    torch.manual_seed(train_cfg.seed)
    model = Transformer(model_config(objective, len(data.tokenizer)))
    train = data.train

    def make_batch(gen):
        pick = torch.randint(len(train), (train_cfg.batch_size,), generator=gen).tolist()
        return make([train[i] for i in pick], gen)

    meta = {"task": "reversal", "objective": objective, **source, "vocab": data.tokenizer.words}
    t0 = time.perf_counter()
    fit(model, make_batch, train_cfg, out_dir, device=device, meta=meta, resume=resume,
        progress=progress)
    results = score(model, data, objective, train_cfg, device)
    results["seconds"] = round(time.perf_counter() - t0, 1)  # this invocation: training + scoring
    Path(out_dir, "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def score(model, data, objective, train_cfg, device) -> dict:
    accuracy, margin = reversal_scores(model, data, objective, device)
    return {"task": "reversal", "objective": objective, "seed": train_cfg.seed,
            "steps": train_cfg.steps, "accuracy": accuracy, "logprob_margin": margin}


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
                         f"train.py --task {task}, or evaluate this one with eval.py --task {found})")
    model = Transformer(ModelConfig(**ckpt["model_config"]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError:
        raise ValueError(f"{run_dir}: the weights do not match the model configuration stored "
                         f"with them ({ckpt['model_config']})") from None
    return model.to(device or "cpu"), ckpt


def load_run(run_dir, device=None):
    """(model, data, checkpoint) of a trained reversal run directory."""
    model, ckpt = load_model(run_dir, "reversal", device)
    data = data_of(ckpt["meta"])
    if data.tokenizer.words != ckpt["meta"]["vocab"]:
        raise ValueError(f"{run_dir}: its vocabulary differs from the one its data gives")
    return model, data, ckpt
