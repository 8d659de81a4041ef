"""Toy *programmes*: long sounds (minutes) made of segments of toy-world recordings with a
known timeline, the test material of the thumbnails (claims 18-21). Rendered segment by
segment, so an hour-long programme streams to disk in bounded memory."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2i.media import encode_audio
from s2i.models.audio_encoder import SR
from s2i.toyworld import world
from s2i.utils import atomic_path

# ============================================================================= toy programmes
# Seeds. Training data draws its clip seeds from SeedSequence([world_seed, i]) (uint32, < 2**32;
# audio rng = seed + 7919) and the pretrain stills from small integers, so every training seed is
# < 2**33. A programme segment's sound uses seed PROGRAMME_SEED_BASE + seed * 2**20 + i >= 2**40:
# it can never be a training seed (numpy hashes the whole integer into its SeedSequence).
PROGRAMME_SEED_BASE = 2**40


_MAX_SEGMENTS = 2**20


_PLAN_TAG = 0x7087  # the plan (classes, durations, order) is drawn from default_rng([_PLAN_TAG, seed])


def segment_seed(seed: int, i: int) -> int:
    """The sound seed of segment ``i`` of programme ``seed`` (>= 2**40, see above)."""
    if not 0 <= i < _MAX_SEGMENTS or seed < 0:
        raise ValueError(f"segment index {i} / seed {seed} out of range")
    return PROGRAMME_SEED_BASE + int(seed) * _MAX_SEGMENTS + int(i)


@dataclass
class Segment:
    """One stretch of a programme: class ``cls`` (index or name; None = background ambience
    only) over background ``background`` for ``duration`` s, at linear ``gain`` (the loudness
    law's gain = radius / R_MAX), with timbre ``pitch``/``rate``."""

    cls: int | str | None
    background: int | str = 0
    duration: float = 10.0
    gain: float = 0.8
    pitch: float = 1.0
    rate: float = 1.0


@dataclass
class Programme:
    """A long toy sound with its ground-truth timeline. Audio is rendered segment by segment
    (:meth:`iter_audio`), so a programme of any length can be streamed to disk."""

    seed: int
    segments: list[Segment]
    sr: int = SR
    fade_s: float = 0.01  # raised-cosine fade in/out of each segment (no clicks)

    def n_samples(self, i: int) -> int:
        return int(round(self.segments[i].duration * self.sr))

    @property
    def total_samples(self) -> int:
        return sum(self.n_samples(i) for i in range(len(self.segments)))

    @property
    def duration(self) -> float:
        return self.total_samples / self.sr

    @property
    def timeline(self) -> list[dict]:
        """One row per segment: start, end (s, exact sample times), cls, name, background, gain."""
        rows, a = [], 0
        for i, s in enumerate(self.segments):
            n = self.n_samples(i)
            c = None if s.cls is None else world.class_index(s.cls)
            b = world.background_index(s.background)
            rows.append(
                dict(
                    start=a / self.sr,
                    end=(a + n) / self.sr,
                    cls=c,
                    name=None if c is None else world.CLASSES[c],
                    background=b,
                    background_name=world.BACKGROUNDS[b],
                    gain=float(s.gain),
                )
            )
            a += n
        return rows

    def class_seconds(self) -> dict[int, float]:
        """Seconds each class is heard."""
        out: dict[int, float] = {}
        for r in self.timeline:
            if r["cls"] is not None:
                out[r["cls"]] = out.get(r["cls"], 0.0) + r["end"] - r["start"]
        return out

    def present_classes(self, min_share: float = 0.1) -> list[int]:
        """Classes heard at least ``min_share`` of the time."""
        return sorted(c for c, s in self.class_seconds().items() if s >= min_share * self.duration)

    def longest_class(self) -> int | None:
        cs = self.class_seconds()
        return max(cs, key=lambda c: (cs[c], -c)) if cs else None

    def segment_audio(self, i: int) -> np.ndarray:
        s = self.segments[i]
        n = self.n_samples(i)
        objs = [] if s.cls is None else [world.SceneObject(s.cls, gain=float(s.gain))]
        x = world.render_sound(
            world.Scene(s.background, objs),
            n / self.sr,
            sr=self.sr,
            seed=segment_seed(self.seed, i),
            pitch=s.pitch,
            rate=s.rate,
        )[:n]
        f = min(int(self.fade_s * self.sr), n // 2)
        if f > 1:
            ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(f) + 0.5) / f)).astype(np.float32)  # never exactly 0
            x[:f] *= ramp
            x[-f:] *= ramp[::-1]
        return x

    def iter_audio(self) -> Iterator[np.ndarray]:
        """The audio, one segment at a time (float32 mono at ``sr``)."""
        for i in range(len(self.segments)):
            yield self.segment_audio(i)

    def audio(self) -> np.ndarray:
        """The whole programme in memory (use :meth:`iter_audio` or :func:`write_programme`
        for long ones)."""
        return np.concatenate(list(self.iter_audio())) if self.segments else np.zeros(0, np.float32)


def _as_segment(s) -> Segment:
    if isinstance(s, Segment):
        return s
    if isinstance(s, dict):
        return Segment(**s)
    return Segment(*s)


def make_programme(
    seed: int = 0,
    duration_s: float = 120.0,
    segments: Sequence | None = None,
    n_classes: int | None = None,
    min_share: float = 0.12,
    min_margin: float = 1.2,
    max_segment_s: float = 60.0,
    min_segment_s: float = 5.0,
    sr: int = SR,
) -> Programme:
    """A toy "programme": a long sound assembled from segments of known classes and
    backgrounds, with its ground-truth timeline.

    With ``segments`` (``Segment``, ``(cls, background, duration[, gain, pitch, rate])`` or
    dicts) the programme is exactly those. Otherwise a plan is drawn from ``seed``:
    ``n_classes`` distinct classes (default 2-4), each heard a share of ``duration_s`` of at
    least ``min_share`` and with one clear winner (the longest class is ``min_margin`` x the
    second), split into segments of ``min_segment_s``..``max_segment_s`` seconds (so classes
    recur) in random order, each over a random background at a gain in [0.6, 1] with the
    training clips' timbre jitter (+-4 %). Memory when rendering is bounded by the longest
    segment, whatever ``duration_s``. Sound seeds never collide with training seeds
    (:func:`segment_seed`)."""
    if segments is not None:
        segs = [_as_segment(s) for s in segments]
        for s in segs:
            if s.duration <= 0:
                raise ValueError(f"segment duration must be positive, got {s.duration}")
        return Programme(seed=int(seed), segments=segs, sr=sr)
    rng = np.random.default_rng([_PLAN_TAG, int(seed)])
    C = len(world.CLASSES)
    m = int(n_classes) if n_classes is not None else int(rng.integers(2, 5))
    if not 1 <= m <= C:
        raise ValueError(f"n_classes must be in 1..{C}, got {m}")
    if m * min_share > 1:
        raise ValueError(f"{m} classes cannot each have a share >= {min_share}")
    classes = rng.choice(C, size=m, replace=False)
    shares = None
    for _ in range(10000):
        p = np.sort(rng.dirichlet(np.full(m, 2.0)))[::-1]
        if p.min() >= min_share and (m == 1 or p[0] >= min_margin * p[1]):
            shares = p
            break
    if shares is None:  # deterministic fallback: linearly decreasing shares
        shares = np.arange(m, 0, -1, dtype=np.float64)
        shares /= shares.sum()
    pieces = []
    for c, share in zip(classes, shares):
        total = share * duration_s
        lo = max(1, math.ceil(total / max_segment_s))
        hi = max(lo, int(total // min_segment_s))
        n = int(rng.integers(lo, min(hi, lo + 2) + 1))  # 0-2 extra pieces: classes recur
        w = rng.uniform(0.8, 1.2, size=n)
        lens = total * w / w.sum()
        if lens.max() > max_segment_s:
            lens = np.full(n, total / n)
        pieces += [(int(c), float(round(L, 2))) for L in lens]
    order = rng.permutation(len(pieces))
    segs = []
    for j in order:
        c, L = pieces[j]
        segs.append(
            Segment(
                cls=c,
                background=int(rng.integers(len(world.BACKGROUNDS))),
                duration=L,
                gain=float(rng.uniform(0.6, 1.0)),
                pitch=float(rng.uniform(0.96, 1.04)),
                rate=float(rng.uniform(0.96, 1.04)),
            )
        )
    return Programme(seed=int(seed), segments=segs, sr=sr)


def write_programme(programme: Programme, path: str | os.PathLike) -> Path:
    """Stream a programme to an audio file, segment by segment (memory: one segment).
    The format follows the suffix: ``.flac`` (FLAC), ``.wav`` (16-bit PCM), ``.ogg``/``.opus``
    (Opus), ``.mp3``, ``.m4a`` (AAC). Written to a temporary name, then renamed."""

    import av

    path = Path(path)
    kinds = {
        ".flac": ("flac", "flac"),
        ".wav": ("wav", "pcm_s16le"),
        ".ogg": ("ogg", "libopus"),
        ".opus": ("ogg", "libopus"),
        ".mp3": ("mp3", "libmp3lame"),
        ".m4a": ("ipod", "aac"),
    }
    if path.suffix.lower() not in kinds:
        raise ValueError(f"{path}: unsupported suffix {path.suffix!r} (use one of {sorted(kinds)})")
    fmt, codec = kinds[path.suffix.lower()]
    sr = programme.sr
    if codec == "libopus" and sr not in (8000, 12000, 16000, 24000, 48000):
        raise ValueError(f"{path}: Opus needs 8/12/16/24/48 kHz, programme is {sr} Hz")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format=fmt) as c:
        st = c.add_stream(codec, rate=sr, layout="mono")
        encode_audio(c, st, (x[None] for x in programme.iter_audio()), sr, hop=4096)
    return path
