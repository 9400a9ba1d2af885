"""The reproduction itself (slow, about 4 minutes on 2 cores): `pytest -m slow`.

Trains NTP and BICO with train.py's default configuration and seed 0, then checks the curse
(NTP: same direction learned, reverse at zero) and its relief (BICO: a reverse test at least 20
points above NTP). On CPU the numbers are exactly reproducible, so these are not flaky.
"""

import pytest

from tinyrev.reversal.experiment import train_reversal

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("slow")
    return {o: train_reversal(o, out / o, device="cpu", progress=False) for o in ("ntp", "bico")}


def test_ntp_learns_the_facts_but_not_their_reverse(results):
    acc = results["ntp"]["accuracy"]
    assert acc["N2D"] >= 0.9 and acc["D2N"] >= 0.9 and acc["Both"] >= 0.9, acc
    assert acc["N2D-reverse"] <= 0.05 and acc["D2N-reverse"] <= 0.05, acc


def test_bico_relieves_the_curse_when_decoded_causally(results):
    ntp, bico = results["ntp"]["accuracy"], results["bico"]["accuracy"]
    gain = max(bico[t] - ntp[t] for t in ("N2D-reverse", "D2N-reverse"))
    assert gain >= 0.2, (ntp, bico)
    assert bico["N2D"] >= 0.9 and bico["D2N"] >= 0.9, bico  # and it still learns the facts
