"""One reversal-curse run, end to end: data, model, objective, training, evaluation, results.json.

Covers: what `train.py` and `eval.py` share: building a run from its settings, training it,
loading it back from its directory and scoring it.
Leaves out: argument parsing (the scripts), the loop and the run directory's checkpoint
(trainer.py), and how each objective is asked (objectives.py).
"""

import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..checkpoint import check_fresh, claim, config_of, load_checkpoint, load_model, write_json
from ..checks import MAX_SENTENCE, check_batch
from ..decoding import GREEDY
from ..model import ModelConfig, Transformer
from ..objectives import OBJECTIVES, Objective, get
from ..trainer import TrainConfig, fit, pick_device
from . import facts
from .evaluate import reversal_scores


def data_of(meta: dict) -> facts.ReversalData:
    """A run's data: built from the facts files stored with it, or generated from its settings."""
    if "facts_files" in meta:
        return facts.build(meta["facts_files"])
    return facts.generate(config_of(facts.FactsConfig, meta.get("facts", {}), "the checkpoint"))


def train_reversal(objective: Objective, out_dir, *, train_cfg: TrainConfig = TrainConfig(),
                   facts_cfg: facts.FactsConfig = facts.FactsConfig(),
                   facts_files: dict | None = None, device=None,
                   resume: dict | None = None, progress: bool = True) -> dict:
    """Train one objective, score it, write results.json; return results.

    The data is generated from `facts_cfg`, or built from `facts_files` (a facts folder as
    `factsio.read` returns it), which the checkpoint then keeps: the run stays evaluable after
    the folder is moved, edited or deleted. results.json holds the scores `score` gives and the
    learning curve: the accuracy of each test at every checkpoint, asked the objective's way.
    """
    check_fresh(out_dir, resume)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    source = {"facts": asdict(facts_cfg)} if facts_files is None else {"facts_files": facts_files}
    data = data_of(source)
    if objective.needs_entities and not any(e.entities for e in data.train):
        raise ValueError(f"--objective {objective.name} masks whole entities, but no training "
                         "sentence holds one: an entity is a test answer (name or description) "
                         "found word for word in a training sentence")
    longest_sentence = max(len(e.ids) for e in data.train)
    if longest_sentence > MAX_SENTENCE:
        raise ValueError(f"a training sentence of {longest_sentence} tokens is longer than the "
                         f"{MAX_SENTENCE} a fact may take (lesson 04's task is for long texts)")
    check_batch(train_cfg.batch_size, longest_sentence)
    longest = max(len(it.target) for items in data.tests.values() for it in items)
    span = objective.span_positions
    if span and longest + 2 > span:  # offsets 0 and [START]'s take two
        raise ValueError(f"a test answer of {longest} words is longer than {objective.name}'s "
                         f"learned span offsets allow ({span - 2} words)")
    torch.manual_seed(train_cfg.seed)
    model = Transformer(ModelConfig(vocab_size=len(data.tokenizer), span_positions=span))
    train = data.train

    def make_batch(gen):
        pick = torch.randint(len(train), (train_cfg.batch_size,), generator=gen).tolist()
        return objective([train[i] for i in pick], gen)

    meta = {"task": "reversal", "objective": objective.name, **source,
            "vocab": data.tokenizer.words}

    def accuracy_now(model):
        return {"accuracy": reversal_scores(model, data, objective, device, margins=False)
                ["accuracy"]}

    t0 = time.perf_counter()
    with claim(out_dir):
        check_fresh(out_dir, resume)  # again: another process may have finished a run there
        fit(model, make_batch, train_cfg, out_dir, device=device, meta=meta, resume=resume,
            progress=progress, evaluate=accuracy_now)
        if progress:
            n = sum(len(items) for items in data.tests.values())
            print(f"scoring {n} test questions (greedy answers and log-prob margins)...",
                  flush=True)
        results = score(model, data, objective, train_cfg, device)
        results["curve"] = load_checkpoint(out_dir).get("curve", [])  # none before this version
        results["seconds"] = round(time.perf_counter() - t0, 1)  # this call: training + scoring
        write_json(Path(out_dir, "results.json"), results)
    return results


def score(model, data, objective: Objective, train_cfg, device, decoding=GREEDY) -> dict:
    """A run's scores asked in `objective`'s form; a model asked both ways (BICO) also gets
    `accuracy_causal`, its answers decoded left to right, the way Lv et al. ask it. Decoded
    greedily unless `decoding` says otherwise; then `decoding` holds what differs from greedy."""
    out = {"task": "reversal", "objective": objective.name, "form": objective.form,
           "seed": train_cfg.seed, "steps": train_cfg.steps,
           **reversal_scores(model, data, objective, device, decoding=decoding)}
    if objective.form == "bidirectional" and get(objective.name).form == "bidirectional":
        out["accuracy_causal"] = reversal_scores(model, data, objective.asked("causal"), device,
                                                 margins=False, decoding=decoding)["accuracy"]
    if decoding != GREEDY:
        out["decoding"] = {k: v for k, v in asdict(decoding).items()
                           if v != getattr(GREEDY, k)}
    return out


def load_run(run_dir, device=None):
    """(model, data, checkpoint) of a trained reversal run directory."""
    model, ckpt = load_model(run_dir, "reversal", device)
    if ckpt["meta"].get("objective") not in OBJECTIVES:
        raise ValueError(f"{run_dir}: its objective {ckpt['meta'].get('objective')!r} is none of "
                         f"{', '.join(OBJECTIVES)}; it comes from another version of tinyrev")
    data = data_of(ckpt["meta"])
    if data.tokenizer.words != ckpt["meta"]["vocab"]:
        raise ValueError(f"{run_dir}: its vocabulary differs from the one its data gives")
    return model, data, ckpt
