"""Why the reversal curse happens: the training-dynamics experiment of Zhu et al. (2024).

Covers: the bilinear model logit(y|x) = u_xᵀ Θ u_y with fixed random embeddings, trained by plain
gradient descent; tinyrev's own decoder with one layer and with four, trained by `trainer.fit` on
the same symbolic task (symbolic.py); the chain task answered directly and with the intermediate
step generated first; the measurements (train and reverse loss, reverse accuracy, the effective
logits from A_i to B_i and from B_i to A_i), a text heat map, and the report that also prints the
asymmetry read off reversal runs (measured by reversal/evaluate.py, `answer_asymmetry`).
Leaves out: the paper's proofs and its reparametrised one-layer transformer: the one-layer model
here is tinyrev's block, unchanged, so the lesson checks the prediction on the code it teaches.
"""

import math
import tempfile

import torch
import torch.nn.functional as F

from ..checks import check_int
from ..model import ModelConfig, Transformer
from ..objectives import Batch
from ..trainer import TrainConfig, fit
from .symbolic import BACKWARD, FORWARD, TWO_HOP, SymbolicConfig, Task, chain_task, reversal_task

SHADES = " .:-=+*#%@"


def embeddings(vocab_size: int, dim: int, seed: int = 0) -> torch.Tensor:
    """(vocab_size, dim) Gaussian rows of norm about 1; two rows meet at about ±1/sqrt(dim)."""
    check_int("the embedding dimension", dim)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(vocab_size, dim, generator=g) / math.sqrt(dim)


def bilinear_logits(theta, U, x):
    """Logits over the whole vocabulary for input tokens x: row x of U Θ Uᵀ."""
    # BEGIN SOLUTION lesson05: row x of U Θ Uᵀ
    return U[x] @ theta @ U.T
    # END SOLUTION


def train_bilinear(task: Task, dim: int = 512, steps: int = 300, lr: float = 1.0, seed: int = 0,
                   log_every: int = 50):
    """Gradient descent on Σ -log p(y|x) over the training sentences, from Θ = 0.

    The model reads only the first entity: in this task its kind already says which relation
    follows. Returns Θ, U and a history of (step, train loss, reverse loss).
    """
    U = embeddings(task.vocab_size, dim, seed)
    theta = torch.zeros(dim, dim, requires_grad=True)
    x, y = task.train[:, 0], task.train[:, 2]
    queries, answers = reverse_queries(task)
    history = []
    for step in range(steps + 1):
        loss = F.cross_entropy(bilinear_logits(theta, U, x), y, reduction="sum")
        if step % log_every == 0 or step == steps:
            with torch.no_grad():
                reverse = F.cross_entropy(bilinear_logits(theta, U, queries[:, 0]), answers)
            history.append((step, loss.item() / len(y), reverse.item()))
        if step < steps:
            # BEGIN SOLUTION lesson05: one step of plain gradient descent on Θ
            (grad,) = torch.autograd.grad(loss, theta)
            with torch.no_grad():
                theta -= lr * grad
            # END SOLUTION
    return theta.detach(), U, history


def train_decoder(task: Task, n_layers: int, steps: int, seed: int = 0, device="cpu"):
    """tinyrev's Transformer, NTP on the 3-token sentences, trained by the project's one loop."""
    torch.manual_seed(seed)
    model = Transformer(ModelConfig(vocab_size=task.vocab_size, n_layers=n_layers))
    cfg = TrainConfig(steps=steps, seed=seed, ckpt_every=steps)

    def make_batch(gen):
        s = task.train[torch.randint(len(task.train), (cfg.batch_size,), generator=gen)]
        return Batch(s[:, :2], s[:, 1:], torch.arange(2))

    with tempfile.TemporaryDirectory() as out:  # fit checkpoints; this experiment keeps nothing
        fit(model, make_batch, cfg, out, device=torch.device(device), progress=False)
    return model.cpu().eval()


def logits_of(model):
    """The model as one function: (Q, 2) queries [entity, relation] -> (Q, V) answer logits."""
    if isinstance(model, Transformer):
        return lambda q: model(q)[:, -1]
    theta, U = model
    return lambda q: bilinear_logits(theta, U, q[:, 0])


def _ask(entities, relation):
    return torch.stack((entities, torch.full_like(entities, relation)), dim=1)


def reverse_queries(task: Task):
    """[B_i, ←] for every test pair, and the answers A_i nothing ever trained."""
    a, b = task.entities[0], task.entities[1]
    return _ask(b[task.test], BACKWARD), a[task.test]


def effective(logits, answers):
    """(n, n): logit of answer j for query i, minus the mean over the n answers of that row.

    Softmax ignores a shift shared by a row, so only the centred logit says how much one answer
    is preferred to the others. The answers compared are the test pairs' alone: a transformer
    learns which tokens follow ← in training, and would otherwise rank every A_i trained there
    above every A_i of the test, whatever the pairs. For the bilinear model from Θ = 0 the
    centred logit is W[x, y] itself, up to the small overlaps of the embeddings.
    """
    # BEGIN SOLUTION lesson05: each row's logits of the answers, centred
    block = logits[:, answers]
    return block - block.mean(dim=1, keepdim=True)
    # END SOLUTION


@torch.no_grad()
def measure(model, task: Task) -> tuple[dict, tuple]:
    """The asymmetry numbers over the test pairs, and the two (test × test) heat-map blocks."""
    f = logits_of(model)
    a, b = task.entities[0, task.test], task.entities[1, task.test]
    forward = effective(f(_ask(a, FORWARD)), b)
    reverse = effective(f(_ask(b, BACKWARD)), a)
    queries, answers = reverse_queries(task)
    rev_logits = f(queries)
    numbers = {
        "train_loss": F.cross_entropy(f(task.train[:, :2]), task.train[:, 2]).item(),
        "reverse_loss": F.cross_entropy(rev_logits, answers).item(),
        "log_M": math.log(task.vocab_size),
        "w_forward": forward.diagonal().mean().item(),
        "w_reverse": reverse.diagonal().mean().item(),
        "reverse_acc": (rev_logits.argmax(-1) == answers).float().mean().item(),
        "chance": 1 / task.entities.shape[1],  # a guess among the A_i, the answer's kind
    }
    return numbers, (forward, reverse)


@torch.no_grad()
def measure_chain(model, task: Task) -> dict:
    """A_i ⇝ ? answered at once, and answered by first generating B_i with A_i → ?, then B_i → ?."""
    f = logits_of(model)
    a, c, t = task.entities[0], task.entities[2], task.test
    direct = f(_ask(a[t], TWO_HOP)).argmax(-1)
    step = f(_ask(a[t], FORWARD)).argmax(-1)
    with_step = f(_ask(step, FORWARD)).argmax(-1)
    return {"direct_acc": (direct == c[t]).float().mean().item(),
            "with_step_acc": (with_step == c[t]).float().mean().item(), "chance": 1 / a.numel()}


def run(cfg: SymbolicConfig = SymbolicConfig(), dim: int = 512, steps: int = 300,
        decoder_steps: int = 600, device="cpu") -> dict:
    """Every figure of the lesson: what `python eval.py --task dynamics` prints and saves.

    The bilinear model goes first: a bad dimension is refused before any minute of training."""
    task = reversal_task(cfg)
    theta, U, history = train_bilinear(task, dim, steps, seed=cfg.seed)
    bilinear, bilinear_blocks = measure((theta, U), task)
    one_layer, one_layer_blocks = measure(train_decoder(task, 1, decoder_steps, cfg.seed, device),
                                          task)
    decoder, _ = measure(train_decoder(task, 4, decoder_steps, cfg.seed, device), task)
    chain_data = chain_task(cfg)
    chain = measure_chain(train_decoder(chain_data, 1, decoder_steps, cfg.seed, device), chain_data)
    config = {"n_pairs": cfg.n_pairs, "n_both": cfg.n_both, "n_test": cfg.n_test,
              "seed": cfg.seed, "dim": dim, "M": task.vocab_size}
    return {"task": "dynamics", "config": config, "bilinear": bilinear, "one_layer": one_layer,
            "decoder": decoder, "chain": chain, "history": history,
            "blocks": {"bilinear": bilinear_blocks, "one_layer": one_layer_blocks}}


def report(r: dict) -> str:
    """The results of `run` (and of `answer_asymmetry`, under "runs") as the text eval.py prints."""
    cfg = r["config"]
    lines = [f"Training dynamics (Zhu et al. 2024): {cfg['n_pairs']} pairs, {cfg['n_both']} "
             "trained "
             f"both ways, {cfg['n_test']} only A → B and tested B ← ?; M = {cfg['M']} tokens, "
             f"log M = {r['bilinear']['log_M']:.3f}", "",
             f"bilinear model, d = {cfg['dim']}, gradient descent from Θ = 0",
             "  step  train loss  reverse loss"]
    lines += [f"{step:6d}  {train:10.4f}  {reverse:12.3f}" for step, train, reverse in r["history"]]
    # reverse / forward: the share of the trained preference that holds the other way (1: symmetric)
    lines += ["", "model               train loss  reverse loss  reverse acc  chance  w_forward  "
              "w_reverse  reverse / forward"]
    for key, name in (("bilinear", "bilinear"), ("one_layer", "one-layer decoder"),
                      ("decoder", "4-layer decoder")):
        m = r[key]
        lines.append(f"{name:18}  {m['train_loss']:10.4f}  {m['reverse_loss']:12.3f}  "
                     f"{100 * m['reverse_acc']:10.1f}%  {100 * m['chance']:5.1f}%  "
                     f"{m['w_forward']:9.2f}  {m['w_reverse']:9.2f}  "
                     f"{m['w_reverse'] / m['w_forward']:17.3f}")
    for key in ("bilinear", "one_layer"):
        lines += ["", f"effective logits, {key.replace('_', '-')}, first test pairs:",
                  heatmap(*r["blocks"][key])]
    c = r["chain"]
    lines += ["", f"chain A ⇝ C, one-layer decoder, {cfg['n_test']} chains tested: directly "
              f"{100 * c['direct_acc']:.1f}%, with B generated first "
              f"{100 * c['with_step_acc']:.1f}%, "
              f"chance {100 * c['chance']:.1f}%"]
    if r.get("runs"):
        lines += ["", "reversal runs: effective log-prob of the right answer, nats",
                  "objective  w_forward  w_reverse  reverse / forward  run"]
        for run in r["runs"]:
            lines.append(f"{run['objective']:9}  {run['w_forward']:9.2f}  {run['w_reverse']:9.2f}  "
                         f"{run['w_reverse'] / run['w_forward']:17.3f}  {run['run']}")
    return "\n".join(lines)


def heatmap(forward, reverse, size: int = 12) -> str:
    """Two blocks side by side as characters, darker for a larger effective logit (< 0: blank)."""
    f, r = forward[:size, :size], reverse[:size, :size]
    top = max(f.max().item(), r.max().item(), 1e-9)
    shade = lambda row: "".join(SHADES[round(v * (len(SHADES) - 1))] * 2
                                for v in (row / top).clamp(0, 1).tolist())
    n = len(f)
    lines = [f"{'trained  A_i → B_j'.ljust(2 * n)}   untrained  B_i ← A_j   (max {top:.1f})"]
    lines += [shade(fr) + "   " + shade(rr) for fr, rr in zip(f, r)]
    return "\n".join(lines)


def plot(r: dict, path):
    """The bilinear model's train and reverse loss over the steps, then the heat maps, as one
    picture. matplotlib is optional: imported here, only when asked for."""
    import matplotlib
    matplotlib.use("Agg")  # draw to a file, with no window
    import matplotlib.pyplot as plt
    blocks = r["blocks"]
    # the loss curve across the top, then one row of two heat maps per model: no empty panel
    layout = [["curve", "curve"]] + [[f"{name} forward", f"{name} reverse"] for name in blocks]
    fig, axes = plt.subplot_mosaic(layout, figsize=(7, 3.2 * (len(blocks) + 1)),
                                   layout="constrained")
    steps, train, reverse = zip(*r["history"])
    curve = axes["curve"]
    curve.plot(steps, train, "-o", label="train: A_i → B_i")
    curve.plot(steps, reverse, "-s", label="reverse: B_i ← ?")
    curve.axhline(math.log(r["config"]["M"]), color="k", linewidth=0.5, linestyle=":",
                  label="log M: uniform over the vocabulary")
    curve.set(xlabel="gradient step", ylabel="loss (nats)", title="bilinear model, d = "
              f"{r['config']['dim']}")
    curve.title.set_fontsize(9)
    curve.legend(fontsize=7)
    for name, (forward, reverse) in blocks.items():
        top = max(forward.max().item(), reverse.max().item())
        row = [axes[f"{name} forward"], axes[f"{name} reverse"]]
        for ax, block, title, (query, answer) in zip(
                row, (forward, reverse), ("A_i → B_j (trained)", "B_i ← A_j (untrained)"),
                (("A_i", "B_j"), ("B_i", "A_j"))):
            image = ax.imshow(block.tolist(), vmin=-top, vmax=top, cmap="RdBu_r")
            ax.set_title(f"{name}: {title}", fontsize=9)
            ax.set(xlabel=f"answer {answer}, test pair j", ylabel=f"query {query}, test pair i")
        fig.colorbar(image, ax=row, shrink=0.8, label="effective logit")
    fig.savefig(path, dpi=120)
