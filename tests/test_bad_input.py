"""Nothing lost, no traceback: the bad inputs and faults a hostile-but-realistic user tries.

Each case asserts exit code 2, one line on stderr naming the value, no traceback, and that what
was saved before is still there. Tools: graded by no lesson. Every case fails before training
starts, or trains a single step, so the file runs in well under a minute.
"""

import os
import runpy
import subprocess
import sys

import pytest
import torch

from test_cli import ROOT, assert_one_line_error, run
from tinyrev.checkpoint import CHECKPOINT, claim, load_checkpoint, save_checkpoint, write_json
from tinyrev.model import ModelConfig, Transformer

pytestmark = pytest.mark.tools


@pytest.fixture
def run_dir(tmp_path):
    """A run directory holding a real (untrained) checkpoint, made without training."""
    out = tmp_path / "run"
    model = Transformer(ModelConfig(vocab_size=20, dim=16, n_layers=1, n_heads=2))
    save_checkpoint(out / CHECKPOINT, {
        "model": model.state_dict(), "optimizer": {}, "step": 1,
        "model_config": {"vocab_size": 20, "dim": 16, "n_layers": 1, "n_heads": 2,
                         "hidden_dim": model.cfg.hidden_dim, "rope_base": 10000.0,
                         "span_positions": 0, "norm_eps": 1e-5},
        "train_config": {"steps": 1}, "rng": torch.Generator().get_state(),
        "meta": {"task": "length", "train_len": 8, "text": {}}})
    return out


def test_eval_never_writes_json_over_a_checkpoint(run_dir):
    before = (run_dir / CHECKPOINT).read_bytes()
    for target in (run_dir / CHECKPOINT, run_dir / "results.json"):
        assert_one_line_error(*run("eval.py", str(run_dir), "--json", str(target))[::2],
                              "is a file train.py wrote", "would replace it")
    assert (run_dir / CHECKPOINT).read_bytes() == before


def test_eval_never_writes_json_through_a_link_to_a_run_or_over_a_table(run_dir, tmp_path):
    """The guard looks at the file a path leads to, not at its name; and the table train.py
    --jobs wrote beside its runs is one of train.py's files too."""
    before = (run_dir / CHECKPOINT).read_bytes()
    link = tmp_path / "out.json"
    link.symlink_to(run_dir / CHECKPOINT)
    assert_one_line_error(*run("eval.py", str(run_dir), "--json", str(link))[::2],
                          "leads to", "is a file train.py wrote")
    assert (run_dir / CHECKPOINT).read_bytes() == before
    table = tmp_path / "table.json"  # beside run_dir, as train.py --out tmp_path --jobs 2 puts it
    table.write_text("[]")
    assert_one_line_error(*run("eval.py", str(run_dir), "--json", str(table))[::2],
                          "is a file train.py wrote")
    assert table.read_text() == "[]"


@pytest.mark.parametrize("where, words", [
    ("missing/out.json", ["the folder", "does not exist"]),
    (".", ["is a folder"]),
])
def test_eval_checks_its_json_path_before_any_work(tmp_path, where, words):
    code, _, err = run("eval.py", "no/such/run", "--json", str(tmp_path / where))
    assert_one_line_error(code, err, "--json", *words)  # refused before the run is even looked for


def test_a_second_process_cannot_train_into_a_claimed_directory(tmp_path):
    out = tmp_path / "busy"
    with claim(out):  # this test process holds it, as a first train.py would
        code, _, err = run("train.py", "--steps", "1", "--out", str(out), "--quiet")
        assert_one_line_error(code, err, "is being trained into by another process",
                              f"pid {os.getpid()}")
    assert not (out / CHECKPOINT).exists()


def test_a_claim_left_by_a_killed_process_is_taken_over(tmp_path):
    out = tmp_path / "stale"
    out.mkdir()
    (out / "train.pid").write_text("999999999")  # no such process
    with claim(out):
        assert (out / "train.pid").read_text() == str(os.getpid())
    assert not (out / "train.pid").exists()


def test_a_table_is_never_replaced(tmp_path):
    (tmp_path / "table.json").write_text("[]")
    code, _, err = run("train.py", "--seed", "0", "1", "--steps", "1", "--out", str(tmp_path))
    assert_one_line_error(code, err, "table.json already holds a table")
    assert (tmp_path / "table.json").read_text() == "[]"


def test_a_failed_checkpoint_write_keeps_the_old_one_and_leaves_no_temporary_file(tmp_path,
                                                                                  monkeypatch):
    path = tmp_path / CHECKPOINT
    save_checkpoint(path, {"model": {"x": torch.ones(2)}})

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(ValueError, match="No space left on device.*as it was before is kept"):
        save_checkpoint(path, {"model": {"x": torch.zeros(2)}})
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT]
    assert torch.load(path)["model"]["x"].tolist() == [1.0, 1.0]


def test_torch_failing_on_a_full_disk_leaves_no_temporary_file(tmp_path, monkeypatch):
    """torch's zip writer reports a full disk as a RuntimeError ("unexpected pos"), not OSError."""
    path = tmp_path / CHECKPOINT
    save_checkpoint(path, {"model": {"x": torch.ones(2)}})

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 7680")
    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(ValueError, match=r"could not write .*ckpt.pt \(is the disk full\?\)"):
        save_checkpoint(path, {"model": {"x": torch.zeros(2)}})
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT]


def test_results_are_written_atomically_and_never_as_nan(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json(path, {"accuracy": 0.5})
    with pytest.raises(ValueError, match="results.json: the results hold NaN"):
        write_json(path, {"accuracy": float("nan")})

    def disk_full(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(ValueError, match="results.json \\(No space left on device\\)"):
        write_json(path, {"accuracy": 1.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    assert path.read_text() == '{\n  "accuracy": 0.5\n}\n'


def test_a_checkpoint_from_another_version_is_named(run_dir):
    ckpt = load_checkpoint(run_dir)
    ckpt["model_config"]["sliding_window"] = 8  # a key a newer tinyrev might add
    torch.save(ckpt, run_dir / CHECKPOINT)
    code, _, err = run("eval.py", "--task", "length", str(run_dir))
    assert_one_line_error(code, err, "['sliding_window']", "another version")


def test_a_checkpoint_with_meta_of_the_wrong_type_is_named(run_dir):
    ckpt = load_checkpoint(run_dir)
    ckpt["meta"] = ["not", "a", "dict"]
    torch.save(ckpt, run_dir / CHECKPOINT)
    code, _, err = run("eval.py", str(run_dir))
    assert_one_line_error(code, err, "'meta' is a list, not a dict")


def test_a_deeply_nested_facts_line_is_one_line(tmp_path):
    from tinyrev.reversal import factsio
    from tinyrev.reversal.facts import FactsConfig, generate_records
    folder = tmp_path / "facts"
    factsio.write(generate_records(FactsConfig(n_per_subset=2, n_train_templates=2,
                                               n_test_templates=1)), folder)
    (folder / "p2d_prompts_train.jsonl").write_text("[" * 100_000 + "\n")
    code, _, err = run("-m", "tinyrev.reversal.factsio", str(folder))
    assert_one_line_error(code, err, "line 1 nests too deeply")


def test_an_empty_completion_in_a_training_file_is_refused(tmp_path):
    from tinyrev.reversal import factsio
    from tinyrev.reversal.facts import FactsConfig, generate_records
    records = generate_records(FactsConfig(n_per_subset=2, n_train_templates=2,
                                           n_test_templates=1))
    records["d2p_prompts_train"][0] = ("someone was once", " ")
    factsio.write(records, tmp_path / "facts")
    code, _, err = run("-m", "tinyrev.reversal.factsio", str(tmp_path / "facts"))
    assert_one_line_error(code, err, "d2p_prompts_train.jsonl line 1", "holds no word")


@pytest.mark.parametrize("args, words", [
    (["train.py", "--lr", "inf"], ["lr must be a finite number > 0", "inf"]),
    (["train.py", "--batch-size", "1000000"], ["over the 262144 a batch may hold",
                                               "lower --batch-size"]),
    (["train.py", "--task", "length", "--batch-size", "100000"], ["lower --batch-size"]),
    (["train.py", "--seed", str(2 ** 64)], ["--seed", "[0, 2**63)"]),
    (["train.py", "--resume", "x", "--out", "y"], ["--resume", "drop --out"]),
    (["train.py", "--resume", ""], ["--resume", "must not be empty"]),
    (["train.py", "--facts", ""], ["--facts", "must not be empty"]),
    (["train.py", "--write-facts", ""], ["--write-facts", "must not be empty"]),
    (["train.py", "--people", "1"], ["n_per_subset must be >= 2"]),
    (["train.py", "--forget", "30"], ["forget=30", "0 to 29"]),
    (["train.py", "--people", "40", "--facts", "d"], ["--people", "--facts DIR brings its own"]),
    (["train.py", "--forget", "0", "--facts", "d"], ["--forget", "delete that person's lines"]),
    (["train.py", "--task", "length", "--forget", "0"], ["--forget does nothing with --task length"]),
    (["eval.py", "x", "--beam", "0"], ["--beam", "positive integer"]),
    (["eval.py", "x", "--repetition-penalty", "-1"], ["--repetition-penalty", "> 0", "-1"]),
    (["eval.py", "x", "--length-penalty", "2"], ["--length-penalty", "--beam"]),
    (["eval.py", "x", "--no-repeat-ngram", "0"], ["--no-repeat-ngram", ">= 1", "got 0"]),
    (["eval.py", "--task", "length", "x", "--beam", "4"], ["--beam does nothing with --task length"]),
    (["eval.py", "--task", "dynamics", "--beam", "2"], ["--beam does nothing with --task dynamics"]),
    (["eval.py", "--task", "editing", "x", "--form", "causal"], ["--form does nothing with --task"]),
    (["eval.py", "--task", "length", "x", "--prompt", "a"], ["--prompt does nothing with --task"]),
    (["eval.py", "x", "--prompt", "a", "--json", "o.json"], ["--json does nothing with --prompt"]),
    (["eval.py", "x", "--pairs", "3"], ["--pairs does nothing with --task reversal"]),
    (["eval.py", "--task", "dynamics", "--seed", "-1"], ["--seed", "[0, 2**63)", "-1"]),
    (["eval.py", "--task", "dynamics", "--seed", "9" * 23], ["--seed", "[0, 2**63)"]),
    (["train.py", "--task", "length", "--jobs", "3"], ["--jobs does nothing with --task length"]),
    (["train.py", "--write-facts", "d", "--steps", "5"], ["--steps does nothing with --write-facts"]),
    (["train.py", "--length", "32"], ["--length does nothing for the reversal task"]),
    (["train.py", "--resume", "x", "--jobs", "2"], ["--jobs does nothing with --resume"]),
    (["-m", "tinyrev.tools.bench", "--rounds", "0"], ["--rounds", "positive integer"]),
    (["-m", "tinyrev.tools.bench", "--device", "tpu"], ["unknown device 'tpu'"]),
    (["-m", "tinyrev.tools.bench", "--threads", "0"], ["--threads", "positive integer"]),
    (["-m", "tinyrev.tools.bench", "--json", "no/such/dir/b.json"], ["does not exist"]),
])
def test_unclear_inputs_each_get_their_line(args, words, capsys, monkeypatch):
    """Run in this process (each is refused before any work): a new Python for each would spend
    seconds importing torch to print one line."""
    module = args[1] if args[0] == "-m" else None
    monkeypatch.setattr(sys, "argv", [module, *args[2:]] if module else list(args))
    with pytest.raises(SystemExit) as exit_:
        if module:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(str(ROOT / args[0]), run_name="__main__")
    assert_one_line_error(exit_.value.code, capsys.readouterr().err, *words)


def test_eval_refuses_the_same_run_twice(run_dir):
    for same in (run_dir / ".", run_dir / CHECKPOINT):  # one run, spelled two ways
        code, _, err = run("eval.py", "--task", "length", str(run_dir), str(same))
        assert_one_line_error(code, err, "is given twice")


def test_resuming_a_finished_run_is_refused_and_changes_nothing(run_dir):
    before = (run_dir / CHECKPOINT).read_bytes()  # the fixture's run: step 1 of 1
    code, _, err = run("train.py", "--resume", str(run_dir))
    assert_one_line_error(code, err, "has finished", "step 1 of 1", "nothing to resume")
    assert (run_dir / CHECKPOINT).read_bytes() == before


def test_an_unexpected_error_is_one_line_with_a_way_to_see_more():
    code = ("import sys; from tinyrev import cli; sys.argv = ['x'] + sys.argv[1:]; "
            "cli.run(lambda: {}['missing'], 'x')")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert_one_line_error(p.returncode, p.stderr, "unexpected KeyError", "--debug")
    p = subprocess.run([sys.executable, "-c", code, "--debug"], cwd=ROOT, capture_output=True,
                       text=True)
    assert "Traceback" in p.stderr and p.returncode == 1



def test_a_sentence_too_long_for_a_fact_is_refused_before_training(tmp_path):
    from tinyrev.reversal import factsio
    from tinyrev.reversal.facts import FactsConfig, generate_records
    records = generate_records(FactsConfig(n_per_subset=2, n_train_templates=2,
                                           n_test_templates=1))
    records["p2d_prompts_train"][0] = ("word " * 2000, " the end .")
    factsio.write(records, tmp_path / "facts")
    code, _, err = run("train.py", "--facts", str(tmp_path / "facts"), "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "a training sentence of 2005 tokens", "1024")
    assert not (tmp_path / "r").exists()


def test_a_checkpoint_whose_weights_changed_on_disk_is_refused(run_dir):
    """A checkpoint carries a digest of its weights: bytes flipped in a weight (here one value
    changed behind save_checkpoint's back) load as a clear error, not as a model that answers
    nonsense."""
    ckpt = torch.load(run_dir / CHECKPOINT, weights_only=True)
    name = next(iter(ckpt["model"]))
    ckpt["model"][name].view(-1)[0] += 1.0
    torch.save(ckpt, run_dir / CHECKPOINT)
    code, _, err = run("eval.py", "--task", "length", str(run_dir))
    assert_one_line_error(code, err, "is damaged", "digest")


def test_a_checkpoint_with_weights_that_are_not_finite_is_refused(run_dir):
    """Written with a valid digest: the weights are what was saved, and still not a model."""
    ckpt = torch.load(run_dir / CHECKPOINT, weights_only=True)
    next(iter(ckpt["model"].values())).view(-1)[0] = float("nan")
    save_checkpoint(run_dir / CHECKPOINT, ckpt)
    assert_one_line_error(*run("eval.py", "--task", "length", str(run_dir))[::2],
                          "holds weights that are not finite")


@pytest.mark.parametrize("step", [-5, 0, 2, 1000000])
def test_a_stored_step_outside_the_run_is_refused(run_dir, step):
    ckpt = torch.load(run_dir / CHECKPOINT, weights_only=True)  # train_config: 1 step
    save_checkpoint(run_dir / CHECKPOINT, {**ckpt, "step": step})
    for command in (("eval.py", "--task", "length", str(run_dir)),
                    ("train.py", "--resume", str(run_dir))):
        assert_one_line_error(*run(*command)[::2], f"stored step {step} is not in 1..1")


@pytest.mark.parametrize("change, command, words", [
    (lambda c: c["train_config"].update(bogus=1), "resume", ["its TrainConfig has ['bogus']"]),
    (lambda c: c["train_config"].update(lr=float("nan")), "resume",
     ["stored TrainConfig is not valid", "lr must be a finite number", "nan"]),
    (lambda c: c["meta"]["text"].update(bogus=1), "eval", ["its LongTextConfig has ['bogus']"]),
    (lambda c: c["meta"].pop("task"), "eval", ["names no task", "task None"]),
])
def test_a_stored_config_from_another_version_is_named(run_dir, change, command, words):
    ckpt = torch.load(run_dir / CHECKPOINT, weights_only=True)
    ckpt["train_config"]["steps"] = 2  # unfinished, so that --resume reads on
    change(ckpt)
    save_checkpoint(run_dir / CHECKPOINT, ckpt)
    args = ("train.py", "--resume", str(run_dir)) if command == "resume" else \
        ("eval.py", "--task", "length", str(run_dir))
    assert_one_line_error(*run(*args)[::2], *words)


def test_paths_that_are_no_folder_are_refused_before_any_work(run_dir, tmp_path):
    file, loop = tmp_path / "a-file", tmp_path / "loop"
    file.write_text("x")
    loop.symlink_to(loop)
    for flag in ("--out", "--write-facts"):
        assert_one_line_error(*run("train.py", flag, str(file))[::2], "is a file, not a folder")
    assert_one_line_error(*run("train.py", "--out", str(loop))[::2], "leads nowhere")
    # a run named by its checkpoint file is the run: here a finished one
    assert_one_line_error(*run("train.py", "--resume", str(run_dir / CHECKPOINT))[::2],
                          "has finished")


@pytest.fixture
def reversal_run(tmp_path):
    """An untrained reversal run on small generated facts: enough to be refused before editing."""
    from dataclasses import asdict
    from tinyrev.reversal.facts import FactsConfig, generate
    facts = FactsConfig(n_per_subset=2, n_train_templates=2, n_test_templates=1)
    data = generate(facts)
    cfg = ModelConfig(vocab_size=len(data.tokenizer), dim=16, n_layers=2, n_heads=2)
    save_checkpoint(tmp_path / "run" / CHECKPOINT, {
        "model": Transformer(cfg).state_dict(), "optimizer": {}, "step": 1,
        "model_config": asdict(cfg), "train_config": {"steps": 1},
        "rng": torch.Generator().get_state(),
        "meta": {"task": "reversal", "objective": "ntp", "facts": asdict(facts),
                 "vocab": data.tokenizer.words}})
    return tmp_path / "run"


@pytest.mark.parametrize("flags, words", [
    (["--fact", "2"], ["--fact 2 is out of range", "facts 0 to 1"]),
    (["--layer", "2"], ["--layer 2 is outside the model", "layers 0 to 1"]),
    (["--fact", "0", "--new", "the zany cartographer of mars"],
     ["--new 'the zany cartographer of mars'", "'zany'", "is not in the run's vocabulary"]),
    (["--new", "the gentle poet"], ["--new rewrites one fact", "--fact"]),
    (["--fact", "0", "--new", "."], ["--new '.' holds no word"]),
    (["--fact", "0", "--new", "the"], ["--new 'the' is the description the run already knows, "
                                       "or its start"]),
    (["--method", "rome", "knowledge-surgery"], ["--method 'knowledge-surgery'", "memit", "all"]),
    (["--edits", "3"], ["--edits 3: this run has 2 facts"]),
    (["--method", "memit", "--edits", "2"], ["--edits 2 edits every fact at once with memit",
                                             "below 2"]),
    (["--method", "memit", "--layers", "1", "2"], ["--layers 1 2", "0 to 1"]),
    (["--method", "memit", "--layers", "1", "0"], ["--layers 1 0", "FIRST <= LAST"]),
])
def test_editing_refuses_what_it_cannot_edit(reversal_run, flags, words, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["eval.py", "--task", "editing", str(reversal_run), *flags])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "eval.py"), run_name="__main__")
    assert_one_line_error(exit_.value.code, capsys.readouterr().err, *words)


def test_editing_refuses_a_length_run(run_dir, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["eval.py", "--task", "editing", str(run_dir)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "eval.py"), run_name="__main__")
    assert_one_line_error(exit_.value.code, capsys.readouterr().err, "holds a 'length' run",
                          "not a 'reversal' run")


def test_the_module_commands_refuse_what_they_cannot_do_in_one_line(tmp_path):
    """In a process of their own: a module already imported (facts.py, masks.py) cannot be
    rerun as __main__ in this one without a warning."""
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert_one_line_error(*run("-m", "tinyrev.tools.assignment", str(loop))[::2], str(loop))
    assert_one_line_error(*run("-m", "tinyrev.reversal.facts", "--seed", "3")[::2],
                          "unrecognized arguments: --seed 3")
    assert_one_line_error(*run("-m", "tinyrev.tools.masks", "--bogus", "7")[::2],
                          "unrecognized arguments: --bogus 7")
