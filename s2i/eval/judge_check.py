"""Does the judge read shapes? The colour-swap check.

Every toy class is a shape; colours are drawn from a palette shared by all classes
(:mod:`s2i.toyworld.world`). A judge that reads colour instead of shape would still score
well on pictures whose colours happen to follow some class, so the check draws **every shape
in every palette colour** (and in colours outside the palette) on held-out stills -- random
backgrounds, sizes and places, through the videos' H.264 round trip -- and asks which class
the judge sees. A shape reader scores near 1 in every colour; a colour reader scores 1/8.

``old_colour_rate`` measures the failure the check exists for: how often a shape drawn in
the colour that class ``k`` had when every class owned a colour (``PALETTE[k]``) is judged as
class ``k``: 0 for a perfect shape reader (it names the shape, never the colour's owner), about
1/8 for a guess, 1.0 for the judge of the world where every class owned its colour.
"""

from __future__ import annotations

import numpy as np

from s2i.toyworld import world
from s2i.toyworld.heldout import TEST_SEED_OFFSET
from s2i.toyworld.stills import codec_roundtrip

OFF_PALETTE = [  # colours no class ever had, each at least 80 (RGB distance) from every background colour
    (120, 60, 20),  # brown
    (150, 255, 150),  # pale green
    (255, 255, 120),  # pale yellow
    (100, 0, 160),  # purple
    (255, 90, 140),  # pink
    (180, 255, 0),  # lime
]


def colour_swap_stills(n_per: int = 4, seed: int = 0, roundtrip: bool = True) -> dict:
    """Single-object stills: ``n_per`` per (shape, colour) for every shape and every palette and
    off-palette colour; radius in [5, R_MAX], place and background at random (held-out seeds)."""
    rng = np.random.default_rng(TEST_SEED_OFFSET + 41 + seed)
    colours = list(world.PALETTE) + OFF_PALETTE
    imgs, cls, col = [], [], []
    for c in range(len(world.CLASSES)):
        for k, rgb in enumerate(colours):
            for _ in range(n_per):
                r = float(rng.uniform(5.0, world.R_MAX))
                x, y = rng.uniform(r + 0.5, world.IMG - r - 0.5, size=2)
                obj = world.SceneObject(c, size=r, x=float(x), y=float(y), colour=rgb)
                imgs.append(world.render_still(world.Scene(int(rng.integers(len(world.BACKGROUNDS))), [obj])))
                cls.append(c)
                col.append(k)
    imgs = np.stack(imgs)
    return dict(
        images=codec_roundtrip(imgs) if roundtrip else imgs,
        cls=np.array(cls),
        colour=np.array(col),
        n_palette=len(world.PALETTE),
    )


def colour_swap_check(judge, stills: dict | None = None) -> dict:
    """Judge the colour-swap stills (``judge.report(images)`` -> ``top_class``): accuracy as
    their shape over the palette colours, over the off-palette ones, per (shape, colour), and
    ``old_colour_rate`` (see the module docstring), beside the chance level 1/8."""
    s = colour_swap_stills() if stills is None else stills
    pred = judge.report(s["images"])["top_class"]
    ok = pred == s["cls"]
    pal = s["colour"] < s["n_palette"]
    foreign = pal & (s["colour"] != s["cls"])
    C, K = len(world.CLASSES), int(s["colour"].max()) + 1
    per = np.zeros((C, K))
    for c in range(C):
        for k in range(K):
            m = (s["cls"] == c) & (s["colour"] == k)
            per[c, k] = ok[m].mean()
    return dict(
        shape_acc_palette=float(ok[pal].mean()),
        shape_acc_off_palette=float(ok[~pal].mean()),
        shape_acc_worst_cell=float(per[:, : s["n_palette"]].min()),
        old_colour_rate=float((pred[foreign] == s["colour"][foreign]).mean()),
        chance=1.0 / C,
        n=int(len(ok)),
        per_shape_colour=per,
    )
