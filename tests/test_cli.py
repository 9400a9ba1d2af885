"""train.py, eval.py and the bench end to end, and their answers to bad input: tools, graded by
no lesson (the end-to-end runs pass once lessons 01 to 03 are done)."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tinyrev.checkpoint import CLAIM

pytestmark = pytest.mark.tools
ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=ROOT):
    p = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def trained(code, err):
    """A fixture's training run must succeed; in the student version, where it stops at a lesson's
    unwritten region, the tests that need the run are skipped with that region named."""
    unwritten = re.search(r"Lesson \d\d: .*? — see lessons/\S+", err)
    if code != 0 and unwritten:
        pytest.skip(f"needs a trained model, and training reaches an unwritten region: "
                    f"{unwritten.group(0)}")
    assert code == 0, err


def assert_one_line_error(code, err, *words):
    assert code == 2 and "Traceback" not in err, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ntp-s0"
    code, stdout, err = run("train.py", "--objective", "ntp", "--steps", "3", "--out", str(out), "--quiet")
    trained(code, err)
    assert "N2D-reverse" in stdout and "How to read it" in stdout
    assert f"wrote {out / 'ckpt.pt'} and {out / 'results.json'}" in stdout
    return out


def test_train_writes_results_json(run_dir):
    r = json.loads((run_dir / "results.json").read_text())
    assert r["task"] == "reversal" and r["objective"] == "ntp" and r["steps"] == 3
    assert set(r["accuracy"]) == {"N2D", "D2N", "N2D-reverse", "D2N-reverse", "Both"}
    assert set(r["logprob_margin"]) == set(r["accuracy"])
    assert all(0 <= a <= 1 for a in r["accuracy"].values()) and r["seconds"] > 0


def test_eval_reproduces_the_run(run_dir, tmp_path):
    code, stdout, err = run("eval.py", str(run_dir), "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    again = json.loads((tmp_path / "e.json").read_text())[0]
    saved = json.loads((run_dir / "results.json").read_text())
    assert again["accuracy"] == saved["accuracy"]


def test_a_trained_run_is_never_overwritten(run_dir):
    before = (run_dir / "ckpt.pt").read_bytes()
    code, _, err = run("train.py", "--objective", "ntp", "--steps", "2", "--out", str(run_dir))
    assert_one_line_error(code, err, "already holds a trained run", "--resume")
    assert (run_dir / "ckpt.pt").read_bytes() == before


def test_resume_refuses_other_settings(run_dir):
    code, _, err = run("train.py", "--resume", str(run_dir), "--steps", "5")
    assert_one_line_error(code, err, "--steps 5 differs from the checkpoint", "(3)")


@pytest.mark.parametrize("args, words", [
    (["train.py", "--objective", "nope"], ["invalid choice: 'nope'", "ntp"]),
    (["train.py", "--steps", "0"], ["--steps", "positive integer", "'0'"]),
    (["train.py", "--steps", "-3"], ["--steps", "'-3'"]),
    (["train.py", "--jobs", "0"], ["--jobs", "positive integer", "'0'"]),
    (["train.py", "--jobs", "two"], ["--jobs", "positive integer", "'two'"]),
    (["train.py", "--resume", "no/such/run"], ["no tinyrev checkpoint at no/such/run"]),
    (["train.py", "--device", "tpu", "--steps", "1"], ["unknown device 'tpu'"]),
    (["eval.py", "no/such/run"], ["no tinyrev checkpoint at no/such/run"]),
])
def test_bad_input_gets_one_line(args, words):
    assert_one_line_error(*run(*args)[::2], *words)


def test_eval_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "ckpt.pt").write_bytes(b"\x00garbage")
    assert_one_line_error(*run("eval.py", str(tmp_path))[::2], "not a readable tinyrev checkpoint")


def test_eval_refuses_a_checkpoint_of_another_configuration(run_dir, tmp_path):
    ckpt = torch.load(run_dir / "ckpt.pt", weights_only=True)
    ckpt["model_config"]["dim"] = 64
    torch.save(ckpt, tmp_path / "ckpt.pt")
    assert_one_line_error(*run("eval.py", str(tmp_path))[::2], "do not match the model configuration")


def test_prompt_completion_and_unknown_words(run_dir):
    code, stdout, err = run("eval.py", str(run_dir), "--prompt", "The")
    assert code == 0, err
    assert "(ntp, causal): The ->" in stdout and "right answer" not in stdout
    code, stdout, err = run("eval.py", str(run_dir), "--prompt",
                            "the gentle cartographer of talvane goes by")
    assert code == 0 and "right answer: calix zellwood (a N2D-reverse test question" in stdout
    code, _, err = run("eval.py", str(run_dir), "--prompt", "the zorblax")
    assert_one_line_error(code, err, "'zorblax' is not in the vocabulary")
    code, _, err = run("eval.py", str(run_dir), "--prompt", "[MASK] [PAD] goes by")
    assert_one_line_error(code, err, "holds [MASK], a control token")


def test_eval_says_when_a_run_is_still_being_trained(run_dir):
    (run_dir / "train.pid").write_text(str(os.getpid()))  # this process stands in for train.py
    try:
        code, _, err = run("eval.py", str(run_dir), "--prompt", "The")
    finally:
        (run_dir / "train.pid").unlink()
    assert code == 0 and "is still being trained" in err and "step 3 of 3" in err


def test_a_claim_that_holds_no_process_id_is_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "train.pid").write_text("")  # cut short, or written by hand
    code, _, err = run("train.py", "--steps", "1", "--out", str(out), "--quiet")
    trained(code, err)
    assert not (out / "train.pid").exists()


def tiny_facts(tmp_path) -> str:
    """A facts folder of 6 people: scoring it takes a moment, where the default facts take
    seconds per run."""
    from tinyrev.reversal import factsio
    from tinyrev.reversal.facts import FactsConfig, generate_records
    folder = tmp_path / "tiny-facts"
    factsio.write(generate_records(FactsConfig(n_per_subset=2, n_train_templates=3,
                                               n_test_templates=1)), folder)
    return str(folder)


def test_parallel_runs_give_the_numbers_of_sequential_ones(tmp_path):
    """--jobs 2 trains in two processes with one thread each; --jobs 1 --threads 1 trains the
    same runs one after another: every accuracy and margin must be the same, run by run."""
    facts = tiny_facts(tmp_path)
    tables = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}"
        code, stdout, err = run("train.py", "--objective", "ntp", "bico", "--steps", "3",
                                "--batch-size", "8", "--out", str(out), "--quiet", "--facts",
                                facts, "--jobs", jobs, "--threads", "1")
        trained(code, err)
        tables[jobs] = json.loads((out / "table.json").read_text())
    strip = lambda t: [(r["objective"], r["seed"], r["accuracy"], r["logprob_margin"]) for r in t]
    assert strip(tables["1"]) == strip(tables["2"])


def test_a_failed_parallel_run_is_named_and_the_others_finish(tmp_path):
    """A run that fails in its worker (here: another process holds its directory, this test
    process standing in for it) fails alone; the other run finishes, and the exit code says
    something failed."""
    out = tmp_path / "t"
    (out / "bico-s0").mkdir(parents=True)
    (out / "bico-s0" / CLAIM).write_text(str(os.getpid()))
    code, stdout, err = run("train.py", "--objective", "ntp", "bico", "--steps", "3",
                            "--batch-size", "8", "--out", str(out), "--quiet", "--jobs", "2",
                            "--facts", tiny_facts(tmp_path))
    if not (out / "ntp-s0" / "results.json").exists():
        trained(code, err)  # skipped in the student version, else fails showing what went wrong
    assert code == 2 and "Traceback" not in err, err
    assert "bico-s0" in err and "1 of 2 runs failed" in err


def running(pid):
    """Whether process `pid` runs (a zombie, finished but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_a_killed_parallel_batch_leaves_no_worker_training(tmp_path):
    """`kill` (SIGTERM) of train.py --jobs 2 ends the workers too: none trains on, orphaned."""
    out = tmp_path / "t"
    proc = subprocess.Popen([sys.executable, "train.py", "--objective", "ntp", "bico", "--steps",
                             "100000", "--batch-size", "8", "--out", str(out), "--quiet",
                             "--jobs", "2", "--facts", tiny_facts(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    claims = [out / run / CLAIM for run in ("ntp-s0", "bico-s0")]
    deadline = time.monotonic() + 120
    while not all(c.exists() for c in claims) and proc.poll() is None:
        assert time.monotonic() < deadline, "the workers never started training"
        time.sleep(0.1)
    if proc.poll() is not None:  # both runs stopped at once: the student version, say
        _, err = proc.communicate()
        trained(proc.returncode, err)
        pytest.fail(f"train.py ended before it was killed: {err}")
    workers = [int(c.read_text()) for c in claims]
    assert all(running(pid) for pid in workers) and proc.pid not in workers
    proc.terminate()
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(running(pid) for pid in workers), f"workers {workers} still train"
    assert proc.returncode != 0


def test_the_bench_counts_six_flops_per_weight_and_the_attention_term():
    """flops_per_token against a count of its own: 6 per parameter outside the nn.Embedding
    modules (Kaplan et al.'s non-embedding parameters: lookups cost no FLOPs), plus
    12 * layers * T * d for the attention scores and weighted sums."""
    from tinyrev.model import ModelConfig, Transformer
    from tinyrev.tools.bench import flops_per_token, reversal_run_flops
    model = Transformer(ModelConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2,
                                    span_positions=4))
    weights = sum(p.numel() for m in model.modules() if not isinstance(m, torch.nn.Embedding)
                  for p in m.parameters(recurse=False))
    assert flops_per_token(model, 10) == 6 * weights + 12 * 2 * 10 * 16
    # ABI's batches are longer than NTP's (Part A, then each span again after [START])
    assert reversal_run_flops("abi", n_batches=5) > reversal_run_flops("ntp", n_batches=5) > 0
