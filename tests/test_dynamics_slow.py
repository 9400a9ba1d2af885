"""Lesson 05's figures (slow, about half a minute on 2 cores): `python -m pytest -m slow`.

Runs everything `python eval.py --task dynamics` runs, at its default settings, and checks the
claims the lesson makes of them: the bilinear asymmetry, the decoders' reverse accuracy at
chance, and the chain answered only with its intermediate step. On CPU the numbers are exactly
reproducible, so the margins below are not there for flakiness but for other torch builds.
"""

import pytest

from tinyrev.dynamics.experiment import run

pytestmark = pytest.mark.slow


def test_the_lesson_figures(request):
    """The whole of `python eval.py --task dynamics`: about half a minute on a 2-core CPU."""
    request.config.pluginmanager.get_plugin("terminalreporter").write_line(
        "training the bilinear model and three small decoders on the symbolic tasks...")
    r = run()
    b, log_M = r["bilinear"], r["bilinear"]["log_M"]
    assert b["train_loss"] < 0.01 and abs(b["reverse_loss"] - log_M) < 0.05 * log_M
    assert b["w_forward"] > 10 and abs(b["w_reverse"]) < 0.2
    for key in ("one_layer", "decoder"):
        m = r[key]
        assert m["train_loss"] < 0.01 and m["reverse_acc"] <= 3 * m["chance"]
        assert m["w_forward"] > 10 and abs(m["w_reverse"]) < 1
    c = r["chain"]
    assert c["direct_acc"] <= 3 * c["chance"] and c["with_step_acc"] > 0.9
