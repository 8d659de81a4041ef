"""Interactive exploration: choose a sound, hear it, see what the generator draws.

:func:`explore_once` is a pure function with every knob a defaulted keyword: a sound of the toy
world's catalogue (class x background) or any mono 16 kHz array, a volume in dB, an optional
second sound mixed in at a relative level, an optional image to edit, seed and guidance -> a
dict with the images, the settings used, the judge's report, and the sound that is heard. It
calls the method's own entry points: one sound -> :meth:`Sound2Image.generate` (claims 6-8),
two sounds -> :meth:`Sound2Image.generate_mix` (claims 13-14), an image ->
:func:`s2i.method.edit.edit_image` (claims 9-12). The widget (:mod:`s2i.app.widget`) runs it.
"""

from __future__ import annotations

import io
import re
import tempfile
import wave
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import torch

from s2i.method.edit import EDIT_STRENGTH, EDIT_W_IMAGE, default_w_sound, edit_image, prepare_image, read_rgb
from s2i.method.generate import Sound2Image
from s2i.method.mix import AMBIENCE_DB, mix_audio
from s2i.models.audio_encoder import SR
from s2i.toyworld import world
from s2i.toyworld.heldout import TEST_SEED_OFFSET, TestSound

CATALOGUE_GAIN = 0.5  # the catalogue object's linear gain at 0 dB (radius R_MAX / 2 by the loudness law)


CATALOGUE_SEED = TEST_SEED_OFFSET + 800_000  # held-out seeds: never a training clip


MIX_WEIGHT = 1.0  # editing with two sounds: each sound's guidance = the one-sound weight * MIX_WEIGHT / K


STAGES = ("sound", "embedding", "generating", "judging")


VOLUME_RANGE_DB = (-24, 12)


MIX_RANGE_DB = (-18, 18)


NONE = "none"  # the dropdowns' "off" value (ipywidgets shows a None value as an empty box)


# --------------------------------------------------------------------------------------------
# the catalogue and the caches
# --------------------------------------------------------------------------------------------
def catalogue_sound(sound_class: int | str, background: int | str, slot: int = 0) -> np.ndarray:
    """The catalogue's 1 s recording of ``sound_class`` heard at ``background`` (object gain
    ``CATALOGUE_GAIN``, a held-out seed; ``slot=1`` is the second sound's own seed). Rendered
    once, then cached; the array is read-only."""
    return _catalogue(world.class_index(sound_class), world.background_index(background), int(slot))


@cache
def _catalogue(c: int, b: int, slot: int) -> np.ndarray:
    a = TestSound(c, b, CATALOGUE_GAIN, CATALOGUE_SEED + 100 * c + 10 * b + slot).render()
    a.setflags(write=False)
    return a


def still_image(background: int | str) -> np.ndarray:
    """The toy world's still of an empty ``background`` (uint8 (32, 32, 3)): a scene to edit."""
    return world.render_still(world.Scene(world.background_index(background), []))


class EmbeddingCache:
    """A small LRU cache of embeddings by key, with hit/miss counters (readable state)."""

    def __init__(self, maxsize: int = 512):
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._d: OrderedDict = OrderedDict()

    def get(self, key, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key in self._d:
            self.hits += 1
            self._d.move_to_end(key)
            return self._d[key]
        self.misses += 1
        v = compute()
        self._d[key] = v
        if len(self._d) > self.maxsize:
            self._d.popitem(last=False)
        return v

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key) -> bool:
        return key in self._d


# --------------------------------------------------------------------------------------------
# the pure function
# --------------------------------------------------------------------------------------------
def explore_once(
    s2i: Sound2Image,
    sound_class: int | str = "bell",
    background: int | str = "meadow",
    volume_db: float = 0.0,
    second_class: int | str | None = None,
    mix_db: float = 0.0,
    image: np.ndarray | int | str | None = None,
    seed: int = 0,
    guidance: float | None = None,
    n: int = 2,
    *,
    sound: np.ndarray | None = None,
    sound_name: str = "upload",
    image_name: str = "image",
    strength: float = EDIT_STRENGTH,
    w_image: float = EDIT_W_IMAGE,
    ambience_db: float | None = AMBIENCE_DB,
    steps: int | None = None,
    cache: EmbeddingCache | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """One exploration step: a sound (and options) -> ``n`` images, judged.

    Args:
        s2i: the loaded models (:meth:`Sound2Image.from_run`).
        sound_class, background: the catalogue sound (class x background of the toy world).
        volume_db: gain of the whole recording in dB (claim 8: louder -> a bigger object).
        second_class: a second catalogue sound (same background, its own seed) mixed in;
            ``None`` = one source.
        mix_db: level of the second sound relative to the first (dB).
        image: an image to edit -- ``None`` (sound only), a background (name or index: the toy
            world's empty still of it), or a uint8 (H, W, 3) array (any size: centre-cropped to
            the generator's :meth:`~s2i.backbones.base.Backbones.drawing_size` of it, as
            :func:`s2i.method.edit.edit_image` does).
        seed: sampling noise (same settings and seed -> the same images).
        guidance: the guidance scale of a picture drawn from one sound (None: the backbones'
            ``guidance``, the profile's ``sampling.guidance``); two sources and edits weigh their
            terms themselves, as :meth:`Sound2Image.generate_mix` and
            :func:`s2i.method.edit.edit_image` do (in units of ``compose_guidance``), as the
            command line's ``--guidance`` does.
        n: images to draw.
        sound: a mono 16 kHz float array (e.g. an uploaded file) used instead of the catalogue
            sound; ``sound_name`` labels it in the settings.
        image_name: label of an array ``image`` in the settings.
        strength, w_image, ambience_db: editing only (see :func:`s2i.method.edit.edit_image`).
        steps: sampling steps (default: the generator's).
        cache: an :class:`EmbeddingCache` shared between calls (sound and image embeddings).
        progress: called as ``progress(stage, i, len(STAGES))`` before each stage.

    Returns:
        dict: ``images`` uint8 (n, h, w, 3) (toy: 32x32); ``settings`` (every knob, names not indices,
        plus ``method``); ``report`` (the judge's dict, ``None`` without a judge); ``audio`` the
        heard mix (mono float32 at ``sr``); ``sr``; ``method`` (``generate``, ``compose`` or
        ``edit``); ``input_image`` (the image edited, or ``None``); ``summary`` (one line
        per image: what the judge sees).
    """
    cache = cache if cache is not None else EmbeddingCache()
    guidance = float(s2i.backbones.guidance if guidance is None else guidance)  # one sound's drawing
    say = progress or (lambda *a: None)
    bg = world.background_index(background)
    # 1. the sound(s): (mono 16 kHz array, gain dB)
    say(STAGES[0], 0, len(STAGES))
    if sound is not None:
        a1 = np.asarray(sound, np.float32)
        if a1.ndim != 1 or len(a1) == 0:
            raise ValueError(f"sound must be a non-empty mono array, got shape {a1.shape}")
        srcs = [(a1, float(volume_db))]
        sound_label = f"upload:{sound_name}"
    else:
        c1 = world.class_index(sound_class)
        srcs = [(catalogue_sound(c1, bg, 0), float(volume_db))]
        sound_label = world.CLASSES[c1]
    second_label = None
    if second_class is not None:
        c2 = world.class_index(second_class)
        srcs.append((catalogue_sound(c2, bg, 1), float(volume_db) + float(mix_db)))
        second_label = world.CLASSES[c2]
    heard = mix_audio([a for a, _ in srcs], [g for _, g in srcs])
    # 2. the image to edit, if any
    say(STAGES[1], 1, len(STAGES))
    img, image_label = None, None
    if image is not None:
        if isinstance(image, (str, int, np.integer)):
            img = still_image(image)
            image_label = f"still:{world.BACKGROUNDS[world.background_index(image)]}"
        else:
            rgb = read_rgb(image)
            img = prepare_image(rgb, s2i.backbones.drawing_size(*rgb.shape[:2]))
            image_label = image_name
    # 3. generate, by the method's own entry points (embeddings memoised in ``cache``)
    say(STAGES[2], 2, len(STAGES))
    model = s2i.with_cache(cache)
    sounds, gains = [a for a, _ in srcs], [g for _, g in srcs]
    if img is not None:
        method = "edit"
        w_sound = default_w_sound(model.backbones) * (1.0 if len(srcs) == 1 else MIX_WEIGHT)
        images = edit_image(
            model,
            img,
            sounds,
            sr=SR,
            gain_db=gains,
            seed=seed,
            n=n,
            strength=strength,
            w_image=w_image,
            w_sound=w_sound,
            ambience_db=ambience_db,
            steps=steps,
        )
    elif len(srcs) == 1:
        method = "generate"
        gained = sounds[0] * 10 ** (gains[0] / 20)
        images = model.generate(gained, sr=SR, n=n, seed=seed, guidance=guidance, steps=steps)
    else:
        method = "compose"
        images = model.generate_mix(sounds, gains, n=n, seed=seed, sr=SR, steps=steps)
    # 4. judge
    say(STAGES[3], 3, len(STAGES))
    judge = s2i.backbones.judge
    report = judge.report(images) if judge is not None else None
    settings = dict(
        sound=sound_label,
        background=world.BACKGROUNDS[bg],
        volume_db=float(volume_db),
        second=second_label,
        mix_db=float(mix_db) if second_label else None,
        image=image_label,
        seed=int(seed),
        guidance=guidance if method == "generate" else None,
        n=int(n),
        method=method,
        strength=float(strength) if img is not None else None,
    )
    return dict(
        images=images,
        settings=settings,
        report=report,
        audio=heard,
        sr=SR,
        method=method,
        input_image=img,
        summary=summarize(report, len(images)),
    )


def summarize(report: dict | None, n: int) -> list[str]:
    """One line per image: the classes the judge sees present (with radius) and the background."""
    if report is None:
        return ["(no judge for this profile)"] * n
    out = []
    for i in range(n):
        objs = [f"{world.CLASSES[c]} r={report['size'][i, c]:.1f}px" for c in np.flatnonzero(report["present"][i])]
        out.append(f"{', '.join(objs) or 'no object'} | {world.BACKGROUNDS[int(report['bg'][i])]}")
    return out


# --------------------------------------------------------------------------------------------
# media helpers: WAV bytes, PNG bytes, uploads
# --------------------------------------------------------------------------------------------
def wav_bytes(audio: np.ndarray, sr: int = SR) -> bytes:
    """Mono float audio in [-1, 1] -> 16-bit PCM WAV bytes (clipped, not normalised: the
    player plays the volume that was chosen)."""
    pcm = (np.clip(np.asarray(audio, np.float64), -1, 1) * 32767).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sr))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    return buf.getvalue()


def spectrogram_image(
    audio: np.ndarray, sr: int = SR, height: int = 128, width: int = 256, db_range: tuple[float, float] = (-50.0, 30.0)
) -> np.ndarray:
    """uint8 (height, width, 3) picture of the log spectrogram on a *fixed* dB scale (so a
    louder sound looks brighter), low frequencies at the bottom, magma colours."""
    import matplotlib
    from PIL import Image

    from s2i.viz import log_spectrogram

    S = log_spectrogram(audio, sr)[::-1]  # (F, T), high frequencies first
    x = np.clip((S - db_range[0]) / (db_range[1] - db_range[0]), 0, 1)
    rgb = (matplotlib.colormaps["magma"](x)[..., :3] * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))


def upload_files(value) -> list[tuple[str, bytes]]:
    """(name, bytes) of the files in a ``FileUpload.value`` (ipywidgets 8: a tuple of dicts
    with ``name`` and ``content``; ipywidgets 7: a dict name -> {metadata, content})."""
    if not value:
        return []
    if isinstance(value, dict):  # ipywidgets 7
        return [(name, bytes(f["content"])) for name, f in value.items()]
    return [(str(f["name"]), bytes(f["content"])) for f in value]


def decode_sound(name: str, data: bytes) -> np.ndarray:
    """Uploaded file bytes (any format PyAV decodes) -> mono float32 at 16 kHz; a
    ``ValueError`` naming the file and the reason if it cannot be read."""
    from s2i.media import MediaError, read_audio

    safe = re.sub(r"[^\w.-]", "_", Path(name).name) or "upload"
    with tempfile.TemporaryDirectory(prefix="s2i-upload-") as d:
        p = Path(d) / safe
        p.write_bytes(data)
        try:
            a = read_audio(p, SR)
        except MediaError as e:
            raise ValueError(f"cannot read {name!r} as sound: {str(e).replace(str(p), name)}") from None
    if len(a) == 0:
        raise ValueError(f"cannot read {name!r} as sound: no samples")
    return a


def decode_image(name: str, data: bytes, size: int | None = world.IMG) -> np.ndarray:
    """Uploaded image bytes -> uint8 (size, size, 3) (centre crop + resize), or the image as it
    is with ``size=None`` (the explorer's widget: :func:`explore_once` prepares it for the
    generator); a ``ValueError`` naming the file if unreadable."""
    from PIL import Image

    try:
        img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except Exception as e:  # PIL raises many kinds (UnidentifiedImageError, OSError, SyntaxError...)
        raise ValueError(f"cannot read {name!r} as image: {type(e).__name__}: {e}") from None
    return img if size is None else prepare_image(img, size)
