"""The toy audio-visual world: procedural scenes whose ground truth is known.

Everything here is deterministic from a seed.

* **Objects**: 8 classes, each a distinct shape and a distinct sound. **Colour is not a class
  cue**: every object instance takes one of the 8 ``PALETTE`` colours, drawn at random and shared
  by all classes (every class appears in every colour, equally often), so a picture's class can be
  read only from its shape -- and a model that reads colour scores at chance (1/8). Clips draw
  one colour per segment, pretraining stills one per object, each from its own random stream
  (:func:`colour_rng`), so the rest of a scene (class, size, place, sound) is drawn exactly as
  before colours were shared.
* **Backgrounds**: 4 kinds, each with its own ambient sound.
* **Loudness law** (documented, tested): an object's sound amplitude is proportional to
  its apparent size. With radius ``r`` pixels, the source's RMS is
  ``REF_RMS * gain`` where ``gain = r / R_MAX`` (``gain_from_size``), i.e. the level is
  ``20*log10(r / R_MAX)`` dB relative to the loudest object. Physically: a source at
  distance ``d`` has amplitude ~ 1/d and apparent radius ~ 1/d, so amplitude ~ radius;
  louder means bigger, i.e. closer. Radii span ``[R_MIN, R_MAX]`` = [3, 13] px, i.e. 0 to
  -12.7 dB. The ambience level varies by +-6 dB from clip to clip (``AMBIENT_DB_RANGE``), so
  it carries no information about the object's size.
* **Resolution**: frames are 32x32 RGB. The generator works at that resolution (a pixel
  diffusion UNet small enough to train on a 2-core CPU); at 32x32 the 8 shapes stay
  distinguishable down to the smallest radius (3 px = 7 px across).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from s2i.media import SR  # the world records at the rate everything in s2i is read at

# ----------------------------------------------------------------------------- constants
IMG = 32  # frame size (pixels, square)
FPS = 8  # video frame rate
DURATION = 4.0  # clip length in seconds
R_MIN, R_MAX = 3.0, 13.0  # object radius range in pixels
REF_RMS = 0.1  # RMS of a source at gain 1 (radius R_MAX)
AMBIENT_RMS = 0.02  # RMS of the ambience (-14 dB below the loudest object) ...
AMBIENT_DB_RANGE = 6.0  # ... varied per clip by +-6 dB: places differ in how loud they are, so the
# only cue to an object's size is its *own* level, and a whole recording made louder (object
# and ambience together) reads as a closer, bigger object (claim 8)

CLASSES = ["bell", "horn", "engine", "bird", "water", "siren", "drum", "buzzer"]
SHAPES = ["circle", "square", "triangle", "diamond", "ring", "cross", "bar", "x"]
PALETTE = [  # object colours, shared by every class; none occurs in any background
    (255, 215, 0),  # yellow
    (220, 30, 30),  # red
    (40, 80, 255),  # blue
    (230, 40, 200),  # magenta
    (0, 230, 230),  # cyan
    (255, 130, 0),  # orange
    (245, 245, 245),  # white
    (20, 255, 90),  # green
]
COLOUR_NAMES = ["yellow", "red", "blue", "magenta", "cyan", "orange", "white", "green"]
DEFAULT_COLOUR = 6  # white: the colour of an object whose colour is not given
SOUNDS = [
    "struck bell: inharmonic partials at 1046 Hz, re-struck twice a second",
    "horn: 196 Hz harmonic tone (sawtooth-like partials 1..10)",
    "engine: 25 Hz pulse train, band-limited below 1.5 kHz",
    "bird: 2-4 kHz up-chirps, 5 per second",
    "water: band-pass noise 1-2.5 kHz",
    "siren: 800 Hz tone frequency-modulated +-300 Hz at 0.8 Hz",
    "drum: low noise bursts (<400 Hz), 3 per second",
    "buzzer: 440 Hz square tone gated at 12 Hz",
]
BACKGROUNDS = ["meadow", "night", "beach", "city"]
AMBIENCES = [
    "meadow: wind, low-pass noise <800 Hz swelling at 0.3 Hz",
    "night: mains hum, 60 Hz and harmonics",
    "beach: waves, broadband noise swelling at 0.15 Hz",
    "city: traffic rumble, brown noise",
]
SEGMENT_TYPES = ["match", "silent", "offscreen", "ambient"]


def class_index(c: int | str) -> int:
    """Class index from an index or a name (``"bell"``)."""
    if isinstance(c, (int, np.integer)):
        if not 0 <= int(c) < len(CLASSES):
            raise ValueError(f"class index {c} out of range 0..{len(CLASSES) - 1}")
        return int(c)
    if c not in CLASSES:
        raise ValueError(f"unknown class {c!r}; classes are {CLASSES}")
    return CLASSES.index(c)


def background_index(b: int | str) -> int:
    if isinstance(b, (int, np.integer)):
        if not 0 <= int(b) < len(BACKGROUNDS):
            raise ValueError(f"background index {b} out of range 0..{len(BACKGROUNDS) - 1}")
        return int(b)
    if b not in BACKGROUNDS:
        raise ValueError(f"unknown background {b!r}; backgrounds are {BACKGROUNDS}")
    return BACKGROUNDS.index(b)


def colour_rgb(colour: int | str | Sequence[int] | None) -> tuple[int, int, int]:
    """RGB of a palette colour (index or name), of an explicit RGB triple, or of
    ``DEFAULT_COLOUR`` for ``None``."""
    if colour is None:
        return PALETTE[DEFAULT_COLOUR]
    if isinstance(colour, str):
        if colour not in COLOUR_NAMES:
            raise ValueError(f"unknown colour {colour!r}; colours are {COLOUR_NAMES}")
        return PALETTE[COLOUR_NAMES.index(colour)]
    if isinstance(colour, (int, np.integer)):
        if not 0 <= int(colour) < len(PALETTE):
            raise ValueError(f"colour index {colour} out of range 0..{len(PALETTE) - 1}")
        return PALETTE[int(colour)]
    rgb = tuple(int(v) for v in colour)
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise ValueError(f"colour {colour!r} is not an RGB triple in 0..255")
    return rgb


def colour_rng(seed: int) -> np.random.Generator:
    """The random stream object colours are drawn from, separate from the one that draws the
    rest of a scene from the same ``seed``."""
    return np.random.default_rng([int(seed), 0xC01])


def gain_from_size(r: float | np.ndarray) -> float | np.ndarray:
    """The loudness law: linear amplitude gain of an object of radius ``r`` px (1 at R_MAX)."""
    return np.asarray(r, dtype=np.float64) / R_MAX if isinstance(r, np.ndarray) else float(r) / R_MAX


def size_from_gain(g: float | np.ndarray) -> float | np.ndarray:
    """Inverse of :func:`gain_from_size`: the radius (px) an object of gain ``g`` has."""
    return np.asarray(g, dtype=np.float64) * R_MAX if isinstance(g, np.ndarray) else float(g) * R_MAX


# ----------------------------------------------------------------------------- pictures
_YY, _XX = np.mgrid[0:IMG, 0:IMG].astype(np.float64) + 0.5  # pixel centres


def background_image(b: int | str) -> np.ndarray:
    """The (IMG, IMG, 3) uint8 picture of background ``b``."""
    b = background_index(b)
    img = np.zeros((IMG, IMG, 3), np.float64)
    y = _YY / IMG  # 0 at top, 1 at bottom
    if b == 0:  # meadow: sky over grass
        sky, grass = np.array([135, 190, 235]), np.array([70, 130, 60])
        img[:] = np.where((y < 0.4)[..., None], sky, grass)
    elif b == 1:  # night: navy gradient
        img[:] = np.array([15, 20, 50]) + (y[..., None] * np.array([20, 20, 30]))
    elif b == 2:  # beach: sea over sand
        sea, sand = np.array([40, 90, 160]), np.array([210, 190, 140])
        img[:] = np.where((y < 0.45)[..., None], sea, sand)
    else:  # city: grey with darker building blocks
        img[:] = np.array([125, 125, 130])
        blocks = ((_XX // 6) % 2 == 0) & (_YY > 8 + 6 * ((_XX // 6) % 3))
        img[blocks] = np.array([85, 85, 95])
    return np.clip(img, 0, 255).astype(np.uint8)


def object_mask(c: int | str, r: float, cx: float, cy: float) -> np.ndarray:
    """Boolean (IMG, IMG) mask of object class ``c`` with radius ``r`` centred at (cx, cy)."""
    shape = SHAPES[class_index(c)]
    dx, dy = _XX - cx, _YY - cy
    d = np.hypot(dx, dy)
    if shape == "circle":
        m = d <= r
    elif shape == "square":
        m = (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
    elif shape == "triangle":  # pointing up, base at the bottom of the r-box
        m = (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2.0)
    elif shape == "diamond":
        m = np.abs(dx) + np.abs(dy) <= 1.03 * r  # half-diagonal <= R_MAX + 0.5: stays inside the frame
    elif shape == "ring":
        m = (d <= r) & (d >= 0.55 * r)
    elif shape == "cross":
        t = 0.35 * r
        m = ((np.abs(dx) <= t) & (np.abs(dy) <= r)) | ((np.abs(dy) <= t) & (np.abs(dx) <= r))
    elif shape == "bar":
        m = (np.abs(dx) <= r) & (np.abs(dy) <= 0.45 * r)
    else:  # x
        t = 0.3 * r
        box = (np.abs(dx) <= 0.8 * r) & (np.abs(dy) <= 0.8 * r)
        m = box & ((np.abs(dx - dy) / np.sqrt(2) <= t) | (np.abs(dx + dy) / np.sqrt(2) <= t))
    return m


def mask_box(m: np.ndarray) -> list[int]:
    """[x0, y0, x1, y1] (inclusive-exclusive) of a mask's pixels, or [0, 0, 0, 0] when empty."""
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return [0, 0, 0, 0]
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


# ----------------------------------------------------------------------------- sounds
def _band(x: np.ndarray, sr: int, lo: float, hi: float) -> np.ndarray:
    """Brick-wall band-pass by FFT masking (deterministic, exact zero outside the band)."""
    X = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / sr)
    X[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(X, n=len(x))


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def source_signal(
    c: int | str,
    n: int,
    sr: int = SR,
    rng: np.random.Generator | None = None,
    pitch: float = 1.0,
    rate: float = 1.0,
    phase: float | None = None,
) -> np.ndarray:
    """Unit-RMS waveform (``n`` samples) of class ``c``'s sound.

    ``pitch`` scales every frequency and ``rate`` every repetition rate (timbre variation:
    training clips use +-4%); ``rng`` draws the noise and the start phase."""
    c = class_index(c)
    rng = np.random.default_rng(0) if rng is None else rng
    t = np.arange(n) / sr
    ph = rng.uniform(0, 1) if phase is None else phase
    if c == 0:  # bell
        f0 = 1046.0 * pitch
        tt = ((t * 2.0 * rate) + ph) % 1.0 / (2.0 * rate)
        env = np.exp(-tt / 0.12)
        x = env * (
            np.sin(2 * np.pi * f0 * t)
            + 0.6 * np.sin(2 * np.pi * 2.76 * f0 * t)
            + 0.3 * np.sin(2 * np.pi * 5.40 * f0 * t)
        )
    elif c == 1:  # horn
        f0 = 196.0 * pitch
        x = sum(np.sin(2 * np.pi * k * f0 * t + k * ph) / k for k in range(1, 11))
    elif c == 2:  # engine
        f = 25.0 * rate * pitch
        pulses = ((t * f + ph) % 1.0) < 0.08
        x = _band(pulses.astype(np.float64) - pulses.mean(), sr, 20, 1500)
    elif c == 3:  # bird
        period = 0.2 / rate
        tt = (t + ph * period) % period
        dur = 0.08
        f_inst = (2000 + 2000 * np.clip(tt / dur, 0, 1)) * pitch
        phase_acc = 2 * np.pi * np.cumsum(f_inst) / sr
        x = np.sin(phase_acc) * (tt < dur) * np.sin(np.pi * np.clip(tt / dur, 0, 1))
    elif c == 4:  # water
        x = _band(rng.standard_normal(n), sr, 1000 * pitch, 2500 * pitch)
    elif c == 5:  # siren
        f_inst = (800 + 300 * np.sin(2 * np.pi * 0.8 * rate * t + 2 * np.pi * ph)) * pitch
        x = np.sin(2 * np.pi * np.cumsum(f_inst) / sr)
    elif c == 6:  # drum
        period = 1 / (3.0 * rate)
        tt = (t + ph * period) % period
        x = _band(rng.standard_normal(n), sr, 30, 400 * pitch) * np.exp(
            -tt / 0.15
        )  # decay long enough to keep peaks < full scale
    else:  # buzzer
        f0 = 440.0 * pitch
        sq = np.sign(np.sin(2 * np.pi * f0 * t)) * 0.5 + 0.5 * np.sin(2 * np.pi * 3 * f0 * t) / 3
        gate = (((t * 12.0 * rate) + ph) % 1.0) < 0.5
        x = _band(sq * gate, sr, 100, 4000)
    return _unit_rms(np.asarray(x, np.float64))


def ambient_signal(b: int | str, n: int, sr: int = SR, rng: np.random.Generator | None = None) -> np.ndarray:
    """Unit-RMS ambience of background ``b``."""
    b = background_index(b)
    rng = np.random.default_rng(0) if rng is None else rng
    t = np.arange(n) / sr
    ph = rng.uniform(0, 2 * np.pi)
    if b == 0:  # meadow wind
        x = _band(rng.standard_normal(n), sr, 20, 800) * (1.0 + 0.5 * np.sin(2 * np.pi * 0.3 * t + ph))
    elif b == 1:  # night hum
        x = sum(np.sin(2 * np.pi * 60 * k * t + k * ph) / k for k in range(1, 5))
    elif b == 2:  # beach waves
        x = _band(rng.standard_normal(n), sr, 20, 7000) * (1.0 + 0.8 * np.sin(2 * np.pi * 0.15 * t + ph))
    else:  # city rumble: brown noise
        x = _band(np.cumsum(rng.standard_normal(n)), sr, 20, 300)
    return _unit_rms(np.asarray(x, np.float64))


def envelope_to_samples(env: np.ndarray, n: int, fps: float = FPS, sr: int = SR, ramp_s: float = 0.02) -> np.ndarray:
    """Per-frame gains -> per-sample gains: held over each frame's interval, with ``ramp_s``
    smoothing at the changes (no clicks)."""
    idx = np.minimum((np.arange(n) / sr * fps).astype(int), len(env) - 1)
    g = np.asarray(env, np.float64)[idx]
    k = max(1, int(ramp_s * sr))
    if k > 1:
        pad = np.concatenate([np.full(k // 2, g[0]), g, np.full(k - 1 - k // 2, g[-1])])
        g = np.convolve(pad, np.ones(k) / k, mode="valid")
    return g


# ----------------------------------------------------------------------------- scenes (still + sound API)
@dataclass
class SceneObject:
    """One object of a scene. Give ``size`` (radius px) or ``gain`` (linear); the other
    follows the loudness law unless both are given. ``colour``: a ``PALETTE`` index or name, an
    RGB triple, or ``None`` for ``DEFAULT_COLOUR``. ``visible`` / ``audible`` switch the
    picture and the sound of the object separately."""

    cls: int | str
    size: float | None = None
    gain: float | None = None
    x: float = IMG / 2
    y: float = IMG / 2
    colour: int | str | tuple[int, int, int] | None = None
    visible: bool = True
    audible: bool = True

    def radius(self) -> float:
        if self.size is not None:
            return float(self.size)
        if self.gain is not None:
            return float(size_from_gain(self.gain))
        raise ValueError("SceneObject needs a size or a gain")

    def amp(self) -> float:
        return float(self.gain) if self.gain is not None else float(gain_from_size(self.radius()))


@dataclass
class Scene:
    """A scene description: a background and objects (rendered in order, later on top)."""

    background: int | str = 0
    objects: list[SceneObject] = field(default_factory=list)
    ambient_gain: float = 1.0


def render_still(scene: Scene) -> np.ndarray:
    """The (IMG, IMG, 3) uint8 picture of a scene (visible objects only)."""
    img = background_image(scene.background).copy()
    for o in scene.objects:
        if o.visible:
            img[object_mask(o.cls, o.radius(), o.x, o.y)] = colour_rgb(o.colour)
    return img


def render_sound(
    scene: Scene,
    duration: float = 1.0,
    sr: int = SR,
    seed: int = 0,
    pitch: float | Sequence[float] = 1.0,
    rate: float | Sequence[float] = 1.0,
    ambience: bool = True,
) -> np.ndarray:
    """The mono float32 sound of a scene: each audible object's sound at ``REF_RMS * gain``
    plus the background's ambience at ``AMBIENT_RMS * ambient_gain``. ``pitch`` / ``rate``
    (one value or one per object) vary the timbre; ``seed`` fixes noise and phases."""
    n = int(round(duration * sr))
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    for i, o in enumerate(scene.objects):
        p = pitch[i] if isinstance(pitch, (list, tuple, np.ndarray)) else pitch
        r = rate[i] if isinstance(rate, (list, tuple, np.ndarray)) else rate
        sig = source_signal(o.cls, n, sr, rng, pitch=p, rate=r)
        if o.audible:
            x += REF_RMS * o.amp() * sig
    amb = ambient_signal(scene.background, n, sr, rng)
    if ambience:
        x += AMBIENT_RMS * scene.ambient_gain * amb
    return np.clip(x, -1, 1).astype(np.float32)
