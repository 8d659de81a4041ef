"""The explorer widget (the pattern of ipywidgets' *Lorenz* example and fastai's
``ImageClassifierCleaner``): it precomputes what it can (catalogue sounds rendered once,
embeddings cached by key, so moving the seed or guidance never re-encodes), its callbacks are
thin, and its state is readable: ``.result`` (the last :func:`s2i.app.explore.explore_once`
dict), ``.error`` (the last readable error, or ``None``). Tests drive it without a browser::

    ex = Explorer(s2i)
    ex.volume.value = 6            # regenerates at once when ``ex.auto`` is ticked
    ex.generate_button.click()     # always regenerates
    ex.result["settings"], ex.result["images"], ex.result["report"]
"""

from __future__ import annotations

import time

import numpy as np

from s2i.app.explore import (
    MIX_RANGE_DB,
    NONE,
    STAGES,
    VOLUME_RANGE_DB,
    EmbeddingCache,
    catalogue_sound,
    decode_image,
    decode_sound,
    explore_once,
    png_bytes,
    spectrogram_image,
    upload_files,
    wav_bytes,
)
from s2i.method.generate import Sound2Image
from s2i.toyworld import world


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

    def __init__(
        self,
        s2i: Sound2Image,
        sound_class: str = "bell",
        background: str = "meadow",
        volume_db: int = 0,
        seed: int = 0,
        guidance: float | None = None,
        n: int = 2,
        steps: int | None = None,
        auto: bool = True,
        precompute: bool = True,
        generate: bool = True,
        scale: int | None = None,
    ):
        import ipywidgets as W

        self.s2i, self.n, self.steps = s2i, int(n), steps
        self.scale = None if scale is None else int(scale)  # None: small pictures enlarged to >= 128 px
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
        self.sound_source = W.ToggleButtons(
            options=[("catalogue", "catalogue"), ("upload", "upload")],
            value="catalogue",
            tooltips=["the toy world's sounds", "an uploaded file"],
            style={"button_width": "110px"},
        )
        self.sound_class = W.Dropdown(
            options=world.CLASSES, value=sound_class, description="class", layout=lay, style=style
        )
        self.background = W.Dropdown(
            options=world.BACKGROUNDS, value=background, description="heard at", layout=lay, style=style
        )
        self.sound_upload = W.FileUpload(
            accept="audio/*,.wav,.flac,.mp3,.ogg,.m4a,.mp4", multiple=False, description="upload sound"
        )
        self.volume = W.IntSlider(
            value=int(volume_db),
            min=VOLUME_RANGE_DB[0],
            max=VOLUME_RANGE_DB[1],
            step=1,
            description="volume dB",
            continuous_update=False,
            layout=lay,
            style=style,
        )
        self.second_class = W.Dropdown(
            options=[("none", NONE)] + [(c, c) for c in world.CLASSES],
            value=NONE,
            description="2nd sound",
            layout=lay,
            style=style,
        )
        self.mix = W.IntSlider(
            value=0,
            min=MIX_RANGE_DB[0],
            max=MIX_RANGE_DB[1],
            step=1,
            description="2nd rel. dB",
            continuous_update=False,
            layout=lay,
            style=style,
        )
        self.image_choice = W.Dropdown(
            options=[("none (sound only)", NONE)]
            + [(f"{b} still", b) for b in world.BACKGROUNDS]
            + [("uploaded image", "upload")],
            value=NONE,
            description="edit image",
            layout=lay,
            style=style,
        )
        self.image_upload = W.FileUpload(accept="image/*", multiple=False, description="upload image")
        self.seed = W.BoundedIntText(
            value=int(seed), min=0, max=2**31 - 1, description="seed", layout=lay, style=style, continuous_update=False
        )
        self.guidance = W.FloatSlider(
            value=float(s2i.backbones.guidance if guidance is None else guidance),
            min=1.0,
            max=10.0,
            step=0.25,
            description="guidance",
            continuous_update=False,
            layout=lay,
            style=style,
        )
        self.auto = W.Checkbox(value=bool(auto), description="regenerate on change", indent=False)
        self.generate_button = W.Button(description="Generate", button_style="primary", icon="refresh")
        self.progress = W.IntProgress(value=0, min=0, max=len(STAGES), description="", layout=W.Layout(width="160px"))
        self.status = W.Label(value="ready")
        self.images = W.Image(format="png")
        self.input_image = W.Image(format="png")
        self.spectrogram = W.Image(format="png")
        self.player = W.Audio(format="wav", autoplay=False, loop=False, controls=True)
        self.judged = W.HTML()
        for w, cls in (
            (self.images, "s2i-explorer-images"),
            (self.volume, "s2i-explorer-volume"),
            (self.seed, "s2i-explorer-seed"),
            (self.auto, "s2i-explorer-auto"),
            (self.generate_button, "s2i-explorer-generate"),
            (self.status, "s2i-explorer-status"),
            (self.spectrogram, "s2i-explorer-spectrogram"),
        ):
            w.add_class(cls)

        for w in (
            self.sound_source,
            self.sound_class,
            self.background,
            self.volume,
            self.second_class,
            self.mix,
            self.image_choice,
            self.seed,
            self.guidance,
        ):
            w.observe(self._changed, names="value")
        self.sound_upload.observe(self._sound_uploaded, names="value")
        self.image_upload.observe(self._image_uploaded, names="value")
        self.generate_button.on_click(lambda _: self.update(force=True))

        head = W.HTML("<b>s2i explorer</b> &middot; sound &rarr; image")
        sound_col = W.VBox(
            [
                W.HTML("<b>sound</b>"),
                self.sound_source,
                self.sound_class,
                self.background,
                self.sound_upload,
                self.volume,
                self.second_class,
                self.mix,
            ]
        )
        image_col = W.VBox(
            [
                W.HTML("<b>image &amp; sampling</b>"),
                self.image_choice,
                self.image_upload,
                self.seed,
                self.guidance,
                self.auto,
                W.HBox([self.generate_button, self.progress]),
            ]
        )
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
        kw = dict(
            sound_class=self.sound_class.value,
            background=self.background.value,
            volume_db=float(self.volume.value),
            second_class=None if second in (None, NONE) else second,
            mix_db=float(self.mix.value),
            seed=int(self.seed.value),
            guidance=float(self.guidance.value),
            n=self.n,
            steps=self.steps,
        )
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
        self._uploaded(
            change, lambda name, data: decode_image(name, data, size=None), "_uploaded_image", self.image_choice
        )

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
        return all(
            np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) or isinstance(b[k], np.ndarray) else a[k] == b[k]
            for k in a
        )

    def _show(self, res: dict):
        from s2i.viz import grid

        scale = self.scale or display_scale(res["images"])
        self.images.value = png_bytes(grid(res["images"], len(res["images"]), scale=scale))
        self.spectrogram.value = png_bytes(spectrogram_image(res["audio"], res["sr"]))
        self.player.value = wav_bytes(res["audio"], res["sr"])
        if res["input_image"] is not None:
            s = self.scale or display_scale(res["input_image"][None])
            self.input_image.value = png_bytes(res["input_image"].repeat(s, 0).repeat(s, 1))
            self.input_box.layout.display = None
        else:
            self.input_box.layout.display = "none"
        self.judged.value = "judge: " + "<br>".join(f"{i + 1}: {s}" for i, s in enumerate(res["summary"]))

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)


def display_scale(images: np.ndarray) -> int:
    """The whole factor that shows (N, H, W, 3) pictures at least 128 px high (1 for large ones),
    as the command line writes them: the toy's 32 px pictures x 4."""
    return max(1, -(-128 // max(1, int(images.shape[1]))))


def plot_result(res: dict, scale: int | None = None):
    """A static matplotlib figure of one :func:`explore_once` result: the images (with the
    judge's verdicts) and the spectrogram of what is heard (``scale``: default
    :func:`display_scale`)."""
    import matplotlib.pyplot as plt

    from s2i.viz import grid

    fig, (a0, a1) = plt.subplots(1, 2, figsize=(8, 2.6), gridspec_kw=dict(width_ratios=[len(res["images"]), 2]))
    a0.imshow(grid(res["images"], len(res["images"]), scale=scale or display_scale(res["images"])))
    a0.set_axis_off()
    s = res["settings"]
    a0.set_title(
        f"{s['sound']} at {s['background']}, {s['volume_db']:+.0f} dB"
        + (f" + {s['second']} ({s['mix_db']:+.0f} dB)" if s["second"] else "")
        + (f", editing {s['image']}" if s["image"] else "")
        + f" · {s['method']}",
        fontsize=8,
    )
    a1.imshow(
        spectrogram_image(res["audio"], res["sr"]),
        aspect="auto",
        extent=[0, len(res["audio"]) / res["sr"], 0, res["sr"] / 2000],
    )
    a1.set_xlabel("s", fontsize=7)
    a1.set_ylabel("kHz", fontsize=7)
    a1.set_title("heard", fontsize=8)
    fig.tight_layout()
    return fig
