"""Interactive exploration: choose a sound, hear it, see what the generator draws.

Two layers (the pattern of ipywidgets' *Lorenz* example and fastai's ``ImageClassifierCleaner``):

* :func:`explore_once` -- a pure function with every knob a defaulted keyword: a sound of the
  toy world's catalogue (class x background) or any mono 16 kHz array, a volume in dB, an
  optional second sound mixed in at a relative level, an optional image to edit, seed and
  guidance -> a dict with the images, the settings used, the judge's report, and the sound
  that is heard. Call it once statically; it is what the widget runs.
* :class:`Explorer` -- the widget. It precomputes what it can (the catalogue's sounds are
  rendered once and cached; sound and image embeddings are cached by key, so moving the seed or
  guidance never re-encodes), its callbacks are thin, and its state is readable: ``.result``
  (the last :func:`explore_once` dict), ``.error`` (the last readable error, or ``None``).
  Tests drive it without a browser::

      ex = Explorer(s2i)
      ex.volume.value = 6            # regenerates at once when ``ex.auto`` is ticked
      ex.generate_button.click()     # always regenerates
      ex.result["settings"], ex.result["images"], ex.result["report"]

Which generation path runs (``result["method"]``):

* one sound, no image -> ``generate``: the audio embedding through the generator (claims 6-8);
* two sounds -> ``compose``: guidance terms per source (composable guidance, as
  :meth:`s2i.generate.Sound2Image.generate_mix`: the place once, each source's object without
  its ambience, each source in its own band, each image the best of 4 candidates), so each
  source's object is drawn distinctly at the size its own level implies (claims 13-14);
* an image -> ``edit``: SDEdit under the image's and the sound(s)' embeddings, as
  :func:`s2i.edit.edit_image` (claims 9-12).
"""
from __future__ import annotations

import hashlib
import io
import re
import tempfile
import time
import wave
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import world
from .generate import AMBIENCE_DB, SR, Sound2Image, compose_mix, mix_audio, mix_conditions
from .studies import TEST_SEED_OFFSET, TestSound

CATALOGUE_GAIN = 0.5  # the catalogue object's linear gain at 0 dB (radius R_MAX / 2 by the loudness law)
CATALOGUE_SEED = TEST_SEED_OFFSET + 800_000  # held-out seeds: never a training clip
MIX_WEIGHT = 1.0  # editing with two sounds: each sound's guidance = the one-sound weight * MIX_WEIGHT / K
GUIDANCE = 2.0  # the guidance slider's default; an edit's sound weight is s2i.edit's scaled by guidance / GUIDANCE
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


@lru_cache(maxsize=None)
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


def _digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha1(a.tobytes() + str((a.dtype, a.shape)).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# the pure function
# --------------------------------------------------------------------------------------------
def explore_once(s2i: Sound2Image, sound_class: int | str = "bell", background: int | str = "meadow",
                 volume_db: float = 0.0, second_class: int | str | None = None, mix_db: float = 0.0,
                 image: np.ndarray | int | str | None = None, seed: int = 0, guidance: float = 2.0, n: int = 2,
                 *, sound: np.ndarray | None = None, sound_name: str = "upload", image_name: str = "image",
                 strength: float = 0.6, w_image: float = 1.0, ambience_db: float | None = AMBIENCE_DB,
                 steps: int | None = None,
                 cache: EmbeddingCache | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> dict:
    """One exploration step: a sound (and options) -> ``n`` images, judged.

    Args:
        s2i: the loaded models (:meth:`Sound2Image.from_run`).
        sound_class, background: the catalogue sound (class x background of the toy world).
        volume_db: gain of the whole recording in dB (claim 8: louder -> a bigger object).
        second_class: a second catalogue sound (same background, its own seed) mixed in;
            ``None`` = one source.
        mix_db: level of the second sound relative to the first (dB).
        image: an image to edit -- ``None`` (sound only), a background (name or index: the toy
            world's empty still of it), or a uint8 (H, W, 3) array (any size: centre-cropped).
        seed: sampling noise (same settings and seed -> the same images).
        guidance: guidance weight of the sound (split over two sources as in
            :func:`s2i.studies.mix_generate`; the sound's weight when editing).
        n: images to draw.
        sound: a mono 16 kHz float array (e.g. an uploaded file) used instead of the catalogue
            sound; ``sound_name`` labels it in the settings.
        image_name: label of an array ``image`` in the settings.
        strength, w_image, ambience_db: editing only (see :func:`s2i.edit.edit_image`).
        steps: sampling steps (default: the generator's).
        cache: an :class:`EmbeddingCache` shared between calls (sound and image embeddings).
        progress: called as ``progress(stage, i, len(STAGES))`` before each stage.

    Returns:
        dict: ``images`` uint8 (n, 32, 32, 3); ``settings`` (every knob, names not indices,
        plus ``method``); ``report`` (the judge's dict, ``None`` without a judge); ``audio`` the
        heard mix (mono float32 at ``sr``); ``sr``; ``method`` (``generate``, ``compose`` or
        ``edit``); ``input_image`` (the image edited, or ``None``); ``summary`` (one line
        per image: what the judge sees).
    """
    cache = cache if cache is not None else EmbeddingCache()
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
    # 2. embeddings, cached by the exact samples embedded
    say(STAGES[1], 1, len(STAGES))

    def embed(x: np.ndarray) -> torch.Tensor:  # (1, D)
        return cache.get(("audio", _digest(x)), lambda: s2i.embed_audio(x, SR))[None]

    gained = [a * 10 ** (g / 20) for a, g in srcs]
    zs = [embed(x) for x in gained]  # K x (1, D)
    img, image_label = None, None
    if image is not None:
        if isinstance(image, (str, int, np.integer)):
            img = still_image(image)
            image_label = f"still:{world.BACKGROUNDS[world.background_index(image)]}"
        else:
            from .edit import prepare_image

            img = prepare_image(image)
            image_label = image_name
        ikey = ("image", image_label, _digest(img))
        z_img = cache.get(ikey, lambda: s2i.backbones.encode_images(img[None]))  # (1, D)
    # 3. generate
    say(STAGES[2], 2, len(STAGES))
    K = len(zs)
    if img is not None:
        from .edit import EDIT_W_SOUND, compose_edit, sound_terms

        w_snd = EDIT_W_SOUND * guidance / GUIDANCE * (1.0 if K == 1 else MIX_WEIGHT / K)  # per sound

        method = "edit"
        conds, weights = [], []
        for x, z in zip(gained, zs):  # each sound with its ambience cancelled (s2i.edit)
            zq = None if ambience_db is None else embed(x * 10 ** (ambience_db / 20))
            c, w = sound_terms(z, zq, w_snd)
            conds, weights = conds + c, weights + w
        images = compose_edit(s2i.backbones, z_img.repeat(n, 1), [c.repeat(n, 1) for c in conds], weights,
                              np.repeat(img[None], n, 0), w_image, seed, strength, "half", steps)  # as edit_image
    elif K == 1:
        method = "generate"
        images = s2i.backbones.generate(zs[0], n_per=n, guidance=guidance, steps=steps, seed=seed)
    else:  # as Sound2Image.generate_mix: the place once, each source's object without its ambience
        method = "compose"
        conds, weights = mix_conditions(embed, gained, guidance, ambience_db=ambience_db)
        images = compose_mix(s2i.backbones, conds, weights, n, seed, ambience_db is not None, steps=steps)
    # 4. judge
    say(STAGES[3], 3, len(STAGES))
    judge = getattr(s2i.backbones, "judge", None)
    report = judge.report(images) if judge is not None else None
    settings = dict(sound=sound_label, background=world.BACKGROUNDS[bg], volume_db=float(volume_db),
                    second=second_label, mix_db=float(mix_db) if second_label else None, image=image_label,
                    seed=int(seed), guidance=float(guidance), n=int(n), method=method,
                    strength=float(strength) if img is not None else None)
    return dict(images=images, settings=settings, report=report, audio=heard, sr=SR, method=method,
                input_image=img, summary=summarize(report, len(images)))


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


def spectrogram_image(audio: np.ndarray, sr: int = SR, height: int = 128, width: int = 256,
                      db_range: tuple[float, float] = (-50.0, 30.0)) -> np.ndarray:
    """uint8 (height, width, 3) picture of the log spectrogram on a *fixed* dB scale (so a
    louder sound looks brighter), low frequencies at the bottom, magma colours."""
    import matplotlib
    from PIL import Image

    from .viz import log_spectrogram

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
    from .media import MediaError, read_audio

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


def decode_image(name: str, data: bytes) -> np.ndarray:
    """Uploaded image bytes -> uint8 (32, 32, 3); a ``ValueError`` naming the file if unreadable."""
    from PIL import Image

    from .edit import prepare_image

    try:
        img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except Exception as e:  # PIL raises many kinds (UnidentifiedImageError, OSError, SyntaxError...)
        raise ValueError(f"cannot read {name!r} as image: {type(e).__name__}: {e}") from None
    return prepare_image(img)


# --------------------------------------------------------------------------------------------
# the widget
# --------------------------------------------------------------------------------------------
class Explorer:
    """ipywidgets explorer over :func:`explore_once` (display it: it renders as its ``.box``).

    Controls (public attributes, settable from code): ``sound_source`` (catalogue / upload),
    ``sound_class``, ``background``, ``sound_upload``, ``volume`` (dB), ``second_class``
    (``"none"`` = off), ``mix`` (dB relative to the first sound), ``image_choice``
    (``"none"``, a background's still, or ``"upload"``), ``image_upload``, ``seed``, ``guidance``,
    ``auto`` (regenerate when a control changes), ``generate_button``.
    Outputs: ``images``, ``spectrogram``, ``player`` (``ipywidgets.Audio``), ``input_image`` (in
    ``input_box``, shown when editing),
    ``judged``, ``status``, ``progress``. State: ``result``, ``error``, ``cache``, ``n_runs``.
    Sliders use ``continuous_update=False``: a drag regenerates once, on release.
    """

    def __init__(self, s2i: Sound2Image, sound_class: str = "bell", background: str = "meadow",
                 volume_db: int = 0, seed: int = 0, guidance: float = 2.0, n: int = 2, steps: int | None = None,
                 auto: bool = True, precompute: bool = True, generate: bool = True, scale: int = 4):
        import ipywidgets as W

        self.s2i, self.n, self.steps, self.scale = s2i, int(n), steps, int(scale)
        self.cache = EmbeddingCache()
        self.result: dict | None = None
        self.error: str | None = None
        self.n_runs = 0
        self._uploaded_sound: tuple[str, np.ndarray] | None = None
        self._uploaded_image: tuple[str, np.ndarray] | None = None
        self._quiet = 0
        self._last_kwargs: dict | None = None
        self._done_status = "ready"
        if precompute:  # the whole catalogue (first and second sounds), rendered once
            for c in range(len(world.CLASSES)):
                for b in range(len(world.BACKGROUNDS)):
                    catalogue_sound(c, b, 0), catalogue_sound(c, b, 1)

        lay = W.Layout(width="300px")
        style = {"description_width": "90px"}
        self.sound_source = W.ToggleButtons(options=[("catalogue", "catalogue"), ("upload", "upload")],
                                            value="catalogue", tooltips=["the toy world's sounds", "an uploaded file"],
                                            style={"button_width": "110px"})
        self.sound_class = W.Dropdown(options=world.CLASSES, value=sound_class, description="class", layout=lay,
                                      style=style)
        self.background = W.Dropdown(options=world.BACKGROUNDS, value=background, description="heard at",
                                     layout=lay, style=style)
        self.sound_upload = W.FileUpload(accept="audio/*,.wav,.flac,.mp3,.ogg,.m4a,.mp4", multiple=False,
                                         description="upload sound")
        self.volume = W.IntSlider(value=int(volume_db), min=VOLUME_RANGE_DB[0], max=VOLUME_RANGE_DB[1], step=1,
                                  description="volume dB", continuous_update=False, layout=lay, style=style)
        self.second_class = W.Dropdown(options=[("none", NONE)] + [(c, c) for c in world.CLASSES], value=NONE,
                                       description="2nd sound", layout=lay, style=style)
        self.mix = W.IntSlider(value=0, min=MIX_RANGE_DB[0], max=MIX_RANGE_DB[1], step=1, description="2nd rel. dB",
                               continuous_update=False, layout=lay, style=style)
        self.image_choice = W.Dropdown(options=[("none (sound only)", NONE)]
                                       + [(f"{b} still", b) for b in world.BACKGROUNDS]
                                       + [("uploaded image", "upload")], value=NONE, description="edit image",
                                       layout=lay, style=style)
        self.image_upload = W.FileUpload(accept="image/*", multiple=False, description="upload image")
        self.seed = W.BoundedIntText(value=int(seed), min=0, max=2**31 - 1, description="seed", layout=lay,
                                     style=style, continuous_update=False)
        self.guidance = W.FloatSlider(value=float(guidance), min=1.0, max=6.0, step=0.25, description="guidance",
                                      continuous_update=False, layout=lay, style=style)
        self.auto = W.Checkbox(value=bool(auto), description="regenerate on change", indent=False)
        self.generate_button = W.Button(description="Generate", button_style="primary", icon="refresh")
        self.progress = W.IntProgress(value=0, min=0, max=len(STAGES), description="", layout=W.Layout(width="160px"))
        self.status = W.Label(value="ready")
        self.images = W.Image(format="png")
        self.input_image = W.Image(format="png")
        self.spectrogram = W.Image(format="png")
        self.player = W.Audio(format="wav", autoplay=False, loop=False, controls=True)
        self.judged = W.HTML()
        for w, cls in ((self.images, "s2i-explorer-images"), (self.volume, "s2i-explorer-volume"),
                       (self.seed, "s2i-explorer-seed"), (self.auto, "s2i-explorer-auto"),
                       (self.generate_button, "s2i-explorer-generate"), (self.status, "s2i-explorer-status"),
                       (self.spectrogram, "s2i-explorer-spectrogram")):
            w.add_class(cls)

        for w in (self.sound_source, self.sound_class, self.background, self.volume, self.second_class, self.mix,
                  self.image_choice, self.seed, self.guidance):
            w.observe(self._changed, names="value")
        self.sound_upload.observe(self._sound_uploaded, names="value")
        self.image_upload.observe(self._image_uploaded, names="value")
        self.generate_button.on_click(lambda _: self.update(force=True))

        head = W.HTML("<b>s2i explorer</b> &middot; sound &rarr; image")
        sound_col = W.VBox([W.HTML("<b>sound</b>"), self.sound_source, self.sound_class, self.background,
                            self.sound_upload, self.volume, self.second_class, self.mix])
        image_col = W.VBox([W.HTML("<b>image &amp; sampling</b>"), self.image_choice, self.image_upload, self.seed,
                            self.guidance, self.auto, W.HBox([self.generate_button, self.progress])])
        out_col = W.VBox([W.HTML("<b>generated</b>"), self.images, self.judged])
        self.input_box = W.VBox([W.HTML("<b>image edited</b>"), self.input_image], layout=W.Layout(display="none"))
        snd_col = W.VBox([W.HTML("<b>heard</b>"), self.spectrogram, self.player, self.input_box])
        self.box = W.VBox([head, W.HBox([sound_col, image_col]), W.HBox([out_col, snd_col]), self.status])
        self.box.add_class("s2i-explorer")
        if generate:
            self.update()

    # ---------------------------------------------------------------- state -> explore_once kwargs
    def kwargs(self) -> dict:
        """The :func:`explore_once` keywords the controls describe now (raises ValueError if
        they ask for an upload that is missing)."""
        second = self.second_class.value
        kw = dict(sound_class=self.sound_class.value, background=self.background.value,
                  volume_db=float(self.volume.value), second_class=None if second in (None, NONE) else second,
                  mix_db=float(self.mix.value), seed=int(self.seed.value), guidance=float(self.guidance.value),
                  n=self.n, steps=self.steps)
        if self.sound_source.value == "upload":
            if self._uploaded_sound is None:
                raise ValueError("no sound uploaded yet: upload a file, or choose the catalogue")
            kw["sound_name"], kw["sound"] = self._uploaded_sound
        choice = self.image_choice.value
        if choice == "upload":
            if self._uploaded_image is None:
                raise ValueError("no image uploaded yet: upload one, or choose a still")
            kw["image_name"], kw["image"] = self._uploaded_image
        elif choice not in (None, NONE):
            kw["image"] = choice
        return kw

    # ---------------------------------------------------------------- callbacks (thin)
    def _changed(self, change=None):
        if not self._quiet and self.auto.value:
            self.update()

    def _sound_uploaded(self, change):
        self._uploaded(change, decode_sound, "_uploaded_sound", self.sound_source)

    def _image_uploaded(self, change):
        self._uploaded(change, decode_image, "_uploaded_image", self.image_choice)

    def _uploaded(self, change, decode, attr: str, widget):
        """Decode the newest uploaded file into ``attr`` = (name, value), then select "upload"."""
        files = upload_files(change["new"])
        if not files:
            return
        name, data = files[-1]
        try:
            setattr(self, attr, (name, decode(name, data)))
        except ValueError as e:
            return self._fail(str(e))
        self._switch(widget, "upload")

    def _switch(self, widget, value):
        """Set ``widget`` to ``value`` and regenerate once (even if it already had that value)."""
        self._quiet += 1
        try:
            widget.value = value
        finally:
            self._quiet -= 1
        self._changed()

    def _progress(self, stage: str, i: int, total: int):
        self.progress.value = i
        self.status.value = f"{stage}…"

    def _fail(self, message: str):
        self.error = message
        self.status.value = f"⚠ {message}"
        self.progress.value = 0
        self.progress.bar_style = "danger"

    # ---------------------------------------------------------------- the one action
    def update(self, force: bool = False) -> dict | None:
        """Regenerate from the controls (skipped when nothing changed, unless ``force``).
        Errors (a missing upload, an unusable setting) go to ``.error`` and the status label;
        ``.result`` then keeps the last good result."""
        try:
            kw = self.kwargs()
        except ValueError as e:
            self._fail(str(e))
            return None
        if not force and self.result is not None and self._same(kw, self._last_kwargs):
            if self.error is not None:  # back to the settings of the shown result: clear the error
                self.error = None
                self._done()
            return self.result
        self.error = None
        self.progress.bar_style = "info"
        self.generate_button.disabled = True
        t0 = time.perf_counter()
        try:
            res = explore_once(self.s2i, **kw, cache=self.cache, progress=self._progress)
        except (ValueError, NotImplementedError, RuntimeError) as e:
            self._fail(f"{type(e).__name__}: {e}")
            return None
        finally:
            self.generate_button.disabled = False
        self.result, self._last_kwargs = res, kw
        self.n_runs += 1
        self._show(res)
        self._done_status = f"done in {time.perf_counter() - t0:.1f} s · {res['method']} · seed {kw['seed']}"
        self._done()
        return res

    def _done(self):
        self.progress.value = len(STAGES)
        self.progress.bar_style = "success"
        self.status.value = self._done_status

    @staticmethod
    def _same(a: dict, b: dict | None) -> bool:
        if b is None or a.keys() != b.keys():
            return False
        return all(np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) or isinstance(b[k], np.ndarray)
                   else a[k] == b[k] for k in a)

    def _show(self, res: dict):
        from .viz import grid

        self.images.value = png_bytes(grid(res["images"], len(res["images"]), scale=self.scale))
        self.spectrogram.value = png_bytes(spectrogram_image(res["audio"], res["sr"]))
        self.player.value = wav_bytes(res["audio"], res["sr"])
        if res["input_image"] is not None:
            self.input_image.value = png_bytes(res["input_image"].repeat(self.scale, 0).repeat(self.scale, 1))
            self.input_box.layout.display = None
        else:
            self.input_box.layout.display = "none"
        self.judged.value = "judge: " + "<br>".join(f"{i + 1}: {s}" for i, s in enumerate(res["summary"]))

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)


def plot_result(res: dict, scale: int = 4):
    """A static matplotlib figure of one :func:`explore_once` result: the images (with the
    judge's verdicts) and the spectrogram of what is heard."""
    import matplotlib.pyplot as plt

    from .viz import grid

    fig, (a0, a1) = plt.subplots(1, 2, figsize=(8, 2.6), gridspec_kw=dict(width_ratios=[len(res["images"]), 2]))
    a0.imshow(grid(res["images"], len(res["images"]), scale=scale))
    a0.set_axis_off()
    s = res["settings"]
    a0.set_title(f"{s['sound']} at {s['background']}, {s['volume_db']:+.0f} dB"
                 + (f" + {s['second']} ({s['mix_db']:+.0f} dB)" if s["second"] else "")
                 + (f", editing {s['image']}" if s["image"] else "") + f" · {s['method']}", fontsize=8)
    a1.imshow(spectrogram_image(res["audio"], res["sr"]), aspect="auto",
              extent=[0, len(res["audio"]) / res["sr"], 0, res["sr"] / 2000])
    a1.set_xlabel("s", fontsize=7)
    a1.set_ylabel("kHz", fontsize=7)
    a1.set_title("heard", fontsize=8)
    fig.tight_layout()
    return fig
