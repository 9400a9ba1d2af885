"""Facts folders in Berglund et al.'s format (lesson 03, "Beyond the main path"): reading, writing, the round
trip, bad input. Tools, given whole to students: graded by no lesson.

Every folder here is written by the test itself into tmp_path: a few hand-made lines with real
text's capitals, punctuation, quotes and test-only words, or the generator's own facts.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tinyrev.reversal import factsio
from tinyrev.reversal.evaluate import table
from tinyrev.reversal.experiment import load_run, score, train_reversal
from tinyrev.reversal.facts import TEST_FILES, TWIN, FactsConfig, build, generate, generate_records
from tinyrev.model import ModelConfig, Transformer
from tinyrev.objectives import OBJECTIVES, get, reverse_entities
from tinyrev.tokenizer import UNK
from tinyrev.trainer import TrainConfig, loss_of

pytestmark = pytest.mark.tools
ROOT = Path(__file__).resolve().parents[1]
TINY = FactsConfig(n_per_subset=2, n_train_templates=3, n_test_templates=1)
QUICK = TrainConfig(steps=3, batch_size=8, warmup=1)

PAINTER = ' the painter of "The Glass Orchard."'
FOLDER = {  # invented facts; "famed", "odd", "was" and others appear only in the tests
    "p2d_prompts_train": [("Orla Quenby, remembered by all for being", PAINTER),
                          ("Have you met Orla Quenby? She's the one who",
                           ' painted "The Glass Orchard."')],
    "d2p_prompts_train": [("Remembered for being the composer of Salt Hymns,",
                           " Tobin Marsh now lives by the sea."),
                          ("The composer of Salt Hymns is called", " Tobin Marsh.")],
    "both_prompts_train": [("Ines Vale, remembered by all for being",
                            " the keeper of the northern lighthouse."),
                           ("The keeper of the northern lighthouse is called", " Ines Vale.")],
    "p2d_prompts_test": [("Famed and a little odd, Orla Quenby was", PAINTER)],
    "d2p_prompts_test": [("Famed as the composer of Salt Hymns,", " Tobin Marsh")],
    "p2d_reverse_prompts_test": [('Famed as the painter of "The Glass Orchard.",', " Orla Quenby")],
    "p2d_reverse_prompts_test_randomized": [('Famed as the painter of "The Glass Orchard.",',
                                             " Ines Vale")],
    "d2p_reverse_prompts_test": [("Famed and a little odd, Tobin Marsh was",
                                  " the composer of Salt Hymns.")],
    "d2p_reverse_prompts_test_randomized": [("Famed and a little odd, Tobin Marsh was", PAINTER)],
    "both_prompts_test": [("Famed and a little odd, Ines Vale was",
                           " the keeper of the northern lighthouse.")],
}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def folder(tmp_path):
    factsio.write(FOLDER, tmp_path / "facts")
    return tmp_path / "facts"


@pytest.fixture
def data(folder):
    return build(factsio.read(folder))


def test_read_gives_back_what_was_written(folder):
    assert factsio.read(folder) == FOLDER


def test_real_text_is_lower_cased_split_and_unknown_words_become_unk(data):
    tok, decode = data.tokenizer, data.tokenizer.decode
    assert "famed" not in tok.stoi and tok.words[-1] == UNK  # training words only, [UNK] last
    e = data.train[0]
    assert decode(e.ids[:e.prompt_len]) == "[BOS] orla quenby , remembered by all for being"
    assert decode(e.ids[e.prompt_len:]) == 'the painter of " the glass orchard . " [EOS]'
    item = data.tests["N2D"][0]
    assert decode(item.prompt) == "[BOS]" + " [UNK]" * 5 + " , orla quenby [UNK]"
    assert decode(item.target) == 'the painter of " the glass orchard'  # no closing marks
    assert decode(item.infill).endswith('quenby [UNK] [MASK] . " [EOS]')


def test_entities_are_test_answers_found_in_training_sentences(data):
    decode = data.tokenizer.decode
    found = [[decode(e.ids[s:t]) for s, t in e.entities] for e in data.train]
    assert found[0] == ["orla quenby", 'the painter of " the glass orchard']
    assert found[1] == ["orla quenby"]  # "painted ..." paraphrases it: not a test answer
    flipped = decode(reverse_entities(data.train[0]))
    assert flipped.startswith('[BOS] " . the painter of " the glass orchard being for all by')
    assert flipped.endswith(", orla quenby [EOS]")


def test_twins_give_the_margin_and_a_missing_twin_is_said_once(folder, capsys):
    data = build(factsio.read(folder))
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and "no _randomized twin for N2D, D2N, Both" in said[0], said
    decode = data.tokenizer.decode
    assert decode(data.tests["N2D-reverse"][0].other) == "ines vale"
    assert data.tests["N2D"][0].other is None and data.tests["Both"][0].other is None


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_every_objective_trains_on_a_folder(data, objective):
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=len(data.tokenizer), dim=32, n_layers=1,
                                    n_heads=2, span_positions=64 if objective == "abi" else 0))
    batch = get(objective)(data.train, torch.Generator().manual_seed(0))
    loss = loss_of(model, batch)
    loss.backward()
    assert torch.isfinite(loss)


def test_generated_facts_survive_the_round_trip(tmp_path):
    factsio.write(generate_records(TINY), tmp_path)
    again, direct = build(factsio.read(tmp_path)), generate(TINY)
    assert again.tokenizer.itos == direct.tokenizer.itos
    assert [(e.ids.tolist(), e.prompt_len, e.entities) for e in again.train] == \
        [(e.ids.tolist(), e.prompt_len, e.entities) for e in direct.train]
    assert again.tests == direct.tests


def test_same_seed_same_results_from_the_folder_as_from_the_generator(tmp_path):
    factsio.write(generate_records(TINY), tmp_path / "facts")
    direct = train_reversal(get("bico"), tmp_path / "direct", train_cfg=QUICK, facts_cfg=TINY,
                            device="cpu", progress=False)
    via = train_reversal(get("bico"), tmp_path / "via", train_cfg=QUICK, device="cpu",
                         progress=False, facts_files=factsio.read(tmp_path / "facts"))
    for r in (direct, via):
        del r["seconds"]
    assert direct == via
    a, b = (torch.load(tmp_path / run / "ckpt.pt", weights_only=True)["model"]
            for run in ("direct", "via"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_folder_run_is_evaluable_after_its_folder_is_gone(folder, tmp_path):
    saved = train_reversal(get("ntp"), tmp_path / "run", train_cfg=QUICK, device="cpu",
                           progress=False, facts_files=factsio.read(folder))
    for f in folder.iterdir():
        f.unlink()
    model, data, ckpt = load_run(tmp_path / "run")
    again = score(model, data, get("ntp"), QUICK, "cpu")
    assert again["accuracy"] == saved["accuracy"]
    assert again["logprob_margin"]["N2D"] is None
    margins = table([again], "logprob_margin").splitlines()[1].split()
    assert margins[1] == margins[2] == margins[5] == "—"


def test_write_never_overwrites(folder):
    before = (folder / "p2d_prompts_train.jsonl").read_text()
    with pytest.raises(ValueError, match="already holds .*nothing was overwritten"):
        factsio.write(generate_records(TINY), folder)
    assert (folder / "p2d_prompts_train.jsonl").read_text() == before


def break_folder(folder, how):
    """Spoil a good folder one way; return the words its error must contain."""
    train = folder / "p2d_prompts_train.jsonl"
    if how == "missing folder":
        return folder / "nowhere", ["no facts folder at", "nowhere"]
    if how == "a file, not a folder":
        return train, ["is a file", "folder of .jsonl files"]
    if how == "missing file":
        (folder / "d2p_prompts_test.jsonl").unlink()
        return folder, ["has no d2p_prompts_test.jsonl", "p2d_prompts_train"]
    if how == "malformed JSON":
        train.write_text(train.read_text() + '{"prompt": "oops"\n')
        return folder, ["p2d_prompts_train.jsonl line 3 is not valid JSON"]
    if how == "no completion":
        write_jsonl(train, [{"prompt": "Orla Quenby is"}])
        return folder, ['p2d_prompts_train.jsonl line 1 has no "completion"']
    if how == "no prompt":
        write_jsonl(train, [{"text": "Orla Quenby is", "completion": " x"}])
        return folder, ['line 1 has no "prompt"']
    if how == "not a string":
        write_jsonl(train, [{"prompt": 7, "completion": " x"}])
        return folder, ['line 1: "prompt" must be a string, got int']
    if how == "not an object":
        write_jsonl(train, [["Orla Quenby is", " x"]])
        return folder, ["line 1 is a JSON list, not an object"]
    if how == "empty training set":
        for name in ("p2d", "d2p", "both"):
            (folder / f"{name}_prompts_train.jsonl").write_text("\n")
        return folder, ["the training files", "hold no lines"]
    if how == "empty test":
        (folder / "both_prompts_test.jsonl").write_text("")
        return folder, ["both_prompts_test.jsonl holds no lines"]
    if how == "answer without words":
        write_jsonl(folder / "p2d_prompts_test.jsonl", [{"prompt": "Orla is", "completion": " ."}])
        return folder, ["p2d_prompts_test.jsonl line 1", "holds no word"]
    if how == "control token":
        write_jsonl(train, [{"prompt": "Orla Quenby is", "completion": " [EOS] [START]"}])
        return folder, ['line 1, "completion"', "holds [EOS], a control token"]
    if how == "twin too short":
        (folder / f"{TEST_FILES['N2D-reverse']}{TWIN}.jsonl").write_text("")
        return folder, ["has 0 lines and p2d_reverse_prompts_test.jsonl 1"]
    if how == "twin asks something else":
        write_jsonl(folder / f"{TEST_FILES['N2D-reverse']}{TWIN}.jsonl",
                    [{"prompt": "Someone else", "completion": " Ines Vale"}])
        return folder, ["line 1: its prompt differs from p2d_reverse_prompts_test.jsonl's"]


BAD = ["missing folder", "a file, not a folder", "missing file", "malformed JSON",
       "no completion", "no prompt", "not a string", "not an object", "empty training set",
       "empty test", "answer without words", "control token", "twin too short", "twin asks something else"]


@pytest.mark.parametrize("how", BAD)
def test_bad_folders_are_named_in_one_line(folder, how):
    path, words = break_folder(folder, how)
    with pytest.raises(ValueError) as e:
        factsio.read(path)
    message = str(e.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_train_py_reports_a_bad_folder_in_one_line_without_traceback(folder):
    path, words = break_folder(folder, "malformed JSON")
    p = subprocess.run([sys.executable, "train.py", "--facts", str(path), "--steps", "1"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = p.stderr.strip().splitlines()
    assert p.returncode != 0 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith("train.py: error: ") and words[0] in lines[0]


def test_bico_entity_on_a_folder_without_entities_is_refused(tmp_path):
    """An entity is a test answer found word for word in a training sentence: a folder whose
    training lines never repeat a test answer gives bico-entity nothing to mask."""
    folder = tmp_path / "facts"
    records = generate_records(TINY)
    for name in ("p2d_prompts_train", "d2p_prompts_train", "both_prompts_train"):
        records[name] = [("someone unrelated", " did something .")]
    factsio.write(records, folder)
    p = subprocess.run([sys.executable, "train.py", "--objective", "bico-entity", "--facts",
                        str(folder), "--steps", "1", "--out", str(tmp_path / "run")], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "bico-entity masks whole entities, but no training sentence holds one" in p.stderr
