"""Held-out test sounds of the toy world: rendered with seeds offset by ``TEST_SEED_OFFSET``
(never a training clip), optionally with timbres outside the training range (training clips
vary pitch and rate by +-4 %; ``novel`` sounds use +-10 %)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2i.toyworld import world

TEST_SEED_OFFSET = 1_000_000_007  # far above any clip seed index used for training worlds


@dataclass
class TestSound:
    cls: int
    bg: int
    gain: float
    seed: int
    pitch: float = 1.0
    rate: float = 1.0
    duration: float = 1.0

    def render(self, gain_db: float = 0.0, object_only_db: float = 0.0) -> np.ndarray:
        """The sound; ``gain_db`` scales the whole recording, ``object_only_db`` only the object."""
        g = self.gain * 10 ** (object_only_db / 20)
        a = world.render_sound(
            world.Scene(self.bg, [world.SceneObject(self.cls, gain=g)]),
            self.duration,
            seed=self.seed,
            pitch=self.pitch,
            rate=self.rate,
        )
        return (a * 10 ** (gain_db / 20)).astype(np.float32)


def sound_bank(n_per_class: int, seed: int, novel: bool = False, gain: float | None = None) -> list[TestSound]:
    """Held-out test sounds: ``n_per_class`` per class, backgrounds cycled, gains uniform in
    the world's range (or fixed), seeds never used in training; ``novel`` = timbres outside
    the training range (pitch and rate x0.9 or x1.1)."""
    rng = np.random.default_rng(TEST_SEED_OFFSET + seed)
    out = []
    for c in range(len(world.CLASSES)):
        for j in range(n_per_class):
            g = gain if gain is not None else float(rng.uniform(world.gain_from_size(world.R_MIN), 1.0))
            p = float(rng.choice([0.9, 1.1])) if novel else 1.0
            r = float(rng.choice([0.9, 1.1])) if novel else 1.0
            out.append(
                TestSound(
                    c, (c + j) % len(world.BACKGROUNDS), g, TEST_SEED_OFFSET + seed * 100_000 + c * 1000 + j, p, r
                )
            )
    return out
