"""The judge reads shapes, not colours: the colour-swap check on the shipped judge, and the
same check failing on a judge that reads colour."""

from pathlib import Path

import numpy as np
import pytest

from s2i.eval.judge_check import colour_swap_check, colour_swap_stills
from s2i.models.judge import Judge
from s2i.toyworld import world

ROOT = Path(__file__).resolve().parents[1]


class ColourReader:
    """A judge that reads colour: the class is the palette index nearest to the picture's most
    saturated pixel (what a judge trained on a world where every class owned a colour can do)."""

    def report(self, images: np.ndarray) -> dict:
        x = images.reshape(len(images), -1, 3).astype(np.float64)
        sat = x.max(-1) - x.min(-1) + (x.min(-1) > 200) * 255  # white counts as saturated
        px = x[np.arange(len(x)), sat.argmax(1)]
        d = np.linalg.norm(px[:, None] - np.array(world.PALETTE, np.float64)[None], axis=-1)
        return dict(top_class=d.argmin(1))


@pytest.fixture(scope="module")
def stills():
    return colour_swap_stills(n_per=4, seed=0)


def test_colour_swap_stills_cover_every_shape_in_every_colour(stills):
    n_colours = len(world.PALETTE) + 6
    assert len(stills["images"]) == len(world.CLASSES) * n_colours * 4
    counts = np.zeros((len(world.CLASSES), n_colours), int)
    np.add.at(counts, (stills["cls"], stills["colour"]), 1)
    assert (counts == 4).all()


def test_the_check_fails_a_judge_that_reads_colour(stills):
    r = colour_swap_check(ColourReader(), stills)
    assert r["old_colour_rate"] > 0.9  # it reads the colour ...
    assert r["shape_acc_palette"] < 0.25  # ... so the check sees chance, not shapes


def test_shipped_judge_reads_shapes_in_any_colour(stills):
    judge = Judge.load(ROOT / "models" / "toy" / "judge")
    r = colour_swap_check(judge, stills)
    assert r["shape_acc_palette"] >= 0.95, r
    assert r["shape_acc_off_palette"] >= 0.9, r
    assert r["old_colour_rate"] < 0.125, r  # below a guess: colour does not decide


def test_shipped_judge_sees_both_objects_of_a_real_two_object_scene():
    """Mixing and editing count two objects in one picture: on held-out real scenes laid out as
    a mix draws them (each object in its own half; radius 5.2 px, the size a source at gain 0.4
    gives), the judge must find both and no third. The judge trained 1,500 steps found both in
    0.66 of these, missing the second object; the shipped one (6,000 steps) 0.98."""
    from dataclasses import replace

    from s2i.eval.studies import mix_pairs, real_pair_scenes

    # seed 5: not the studies' reported draw (0)
    pairs = [(replace(a, gain=0.4), replace(b, gain=0.4)) for a, b in mix_pairs(96, seed=5)]
    rep = Judge.load(ROOT / "models" / "toy" / "judge").report(real_pair_scenes(pairs, seed=5))
    i = np.arange(len(pairs))
    both = rep["present"][i, [a.cls for a, _ in pairs]] & rep["present"][i, [b.cls for _, b in pairs]]
    assert both.mean() >= 0.9, both.mean()
    assert (both & (rep["present"].sum(1) == 2)).mean() >= 0.9  # and no third class besides
