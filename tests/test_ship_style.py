"""scripts/ship_style.py: the recipe header's step, the comparison it prints, and its refusals (no scoring:
that is benchmarks/quality.py's, tested there; no ../shared needed)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from texture_nets.core.errors import TextureNetsError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import ship_style  # noqa: E402


def test_the_header_gets_the_new_step_of_a_run_that_goes_on():
    header = "# Shipped at step 500 of 6000 of this recipe, which continues\nnum_iterations = 6000\n"
    assert ship_style.header_with_step(header, 1750, 6000) == header.replace("step 500 of 6000", "step 1750 of 6000")
    commas = "# Shipped at step 1,000 of 4,000 (4,000 images)\n"
    assert ship_style.header_with_step(commas, 2500, 4000) == "# Shipped at step 2500 of 4000 (4,000 images)\n"
    assert ship_style.header_with_step(header, 6000, 6000) == header  # finished: the header is the user's
    with pytest.raises(TextureNetsError, match="step S of 6000"):
        ship_style.header_with_step("# Trained for all 4,000 steps\n", 1750, 6000)


def test_a_finished_run_says_what_is_left_by_hand():
    assert ship_style.finished_note("udnie", {"step": 1500, "train": {"num_iterations": 4000}}) == ""
    note = ship_style.finished_note("udnie", {"step": 4000, "train": {"num_iterations": 4000}})
    assert "git rm configs/retrain/udnie.toml checkpoints/retrain/udnie.pt" in note


def test_the_comparison_shows_shipped_candidate_and_peer_with_the_verdict():
    figures = {"style": 0.4, "content": 1.0, "classic_style": 1e5, "classic_content": 4e5, "edge_corr": 0.6}
    shipped = {"models": {"texture_nets": {**figures, "style": 0.5, "step": 2500}}}
    candidate = {"models": {"texture_nets": {**figures, "step": 3750},
                            "ulyanov2016": {**figures, "style": 0.8, "content": 1.2, "classic_style": 2e5,
                                            "classic_content": 5e5}}}
    text = ship_style.comparison("pleades", shipped, candidate)
    header, style_row = text.splitlines()[:2]
    assert header.split()[1:] == ["shipped", "(step", "2,500)", "candidate", "(step", "3,750)", "ulyanov2016"]
    assert style_row.split()[-3:] == ["0.500", "0.400", "0.800"]
    assert "lum. corr" in text and "—" in text  # a figure a model lacks is a dash, not an error
    assert text.splitlines()[-1] == "against ulyanov2016: 0.50×, 0.83× (ours lower on both, both metrics)"


def test_it_refuses_a_checkpoint_its_recipe_did_not_make_and_changes_nothing():
    """pleades' weights under udnie's recipe: refused before any file is written."""
    watched = [ROOT / "texture_nets" / "styles" / "udnie.pt", ROOT / "configs" / "styles" / "udnie.toml",
               ship_style.RESULTS, ship_style.BENCH_README]
    before = [hashlib.sha256(path.read_bytes()).hexdigest() for path in watched]
    pleades = ROOT / "texture_nets" / "styles" / "pleades.pt"
    with pytest.raises(TextureNetsError, match="did not make .*style_weights"):
        ship_style.ship("udnie", ship_style.load_checkpoint(pleades), pleades, results={})
    assert [hashlib.sha256(path.read_bytes()).hexdigest() for path in watched] == before


def test_bad_names_get_one_line():
    for args in (["nosuch"], ["udnie", "--checkpoint", "/no/such.pt"]):
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "ship_style.py"), *args],
                              capture_output=True, text=True)
        assert done.returncode != 0 and done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("ship_style.py: ")
