"""Tests of ``s2i.app.explore``: the pure ``explore_once`` and the ``Explorer`` widget, driven
without a browser by setting its controls from code (``ex.volume.value = 6``,
``ex.generate_button.click()``) and reading ``ex.result``.

* helpers (WAV/PNG bytes, upload decoding, the cache) run everywhere;
* the mechanics run with the nbval smoke models (``build/nbval``; skipped if absent);
* the behaviour the claims promise -- louder -> a bigger object, a second sound -> a second
  object -- is only meaningful with trained models: it runs with the toy run
  (``models/toy`` + ``results/alignment/audio_encoder``) when it exists, else skips.
CPU only, one torch thread.
"""

from __future__ import annotations

import datetime as dt
import io
import wave

import numpy as np
import pytest
import torch

from s2i.app.explore import (
    STAGES,
    EmbeddingCache,
    catalogue_sound,
    decode_image,
    decode_sound,
    explore_once,
    spectrogram_image,
    still_image,
    upload_files,
    wav_bytes,
)
from s2i.app.widget import Explorer
from s2i.eval.studies import judged_size
from s2i.method.generate import Sound2Image
from s2i.method.mix import SOURCE_WEIGHT
from s2i.models.audio_encoder import SR
from s2i.paths import repo_root
from s2i.toyworld import world

ROOT = repo_root()
NBVAL = ROOT / "build" / "nbval"
TOY_MODELS, TOY_RUN = ROOT / "models" / "toy", ROOT / "results"


@pytest.fixture(scope="module")
def smoke(smoke_s2i):
    return smoke_s2i


@pytest.fixture(scope="module")
def toy():
    if not (TOY_MODELS / "generator").exists() or not (TOY_RUN / "alignment" / "audio_encoder").exists():
        pytest.skip(
            "the trained toy run is missing (models/toy/generator, results/alignment/audio_encoder): "
            "run `dvc repro` (profile toy) first"
        )
    return Sound2Image.from_run(TOY_RUN, profile="toy", model_dir=TOY_MODELS)


def _upload_value(name: str, data: bytes, mime: str = "audio/wav") -> tuple:
    """What ``FileUpload.value`` holds after a browser upload (ipywidgets 8)."""
    return (
        {
            "name": name,
            "type": mime,
            "size": len(data),
            "content": memoryview(data),
            "last_modified": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        },
    )


def _wav(audio: np.ndarray, sr: int, channels: int = 1) -> bytes:
    pcm = (np.clip(audio, -1, 1) * 32767).round().astype("<i2")
    if channels > 1:
        pcm = np.repeat(pcm[:, None], channels, 1)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# helpers (no models needed)
# --------------------------------------------------------------------------------------------
def test_catalogue_is_rendered_once_and_read_only():
    a = catalogue_sound("bell", "meadow")
    assert a is catalogue_sound(0, 0) and a is catalogue_sound("bell", 0)  # cached: the same array
    assert a.dtype == np.float32 and a.shape == (SR,) and not a.flags.writeable
    b = catalogue_sound("bell", "meadow", slot=1)  # the second sound has its own seed
    assert b.shape == a.shape and not np.array_equal(a, b)
    assert not np.array_equal(catalogue_sound("drum", "meadow"), a)
    with pytest.raises(ValueError, match="unknown class"):
        catalogue_sound("tuba", "meadow")


def test_still_image_is_the_empty_background():
    for b in world.BACKGROUNDS:
        np.testing.assert_array_equal(still_image(b), world.background_image(b))


def test_embedding_cache_counts_and_evicts():
    c = EmbeddingCache(maxsize=2)
    calls = []
    f = lambda v: lambda: calls.append(v) or torch.tensor([float(v)])  # noqa: E731
    assert c.get("a", f(1)).item() == 1 and c.get("a", f(99)).item() == 1
    assert (c.hits, c.misses, calls) == (1, 1, [1])
    c.get("b", f(2)), c.get("c", f(3))  # "a" is the least recently used: evicted
    assert len(c) == 2 and "a" not in c and "c" in c


def test_wav_bytes_roundtrip_through_the_upload_decoder():
    a = catalogue_sound("siren", "night") * 10 ** (6 / 20)
    data = wav_bytes(a, SR)
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    back = decode_sound("x.wav", data)
    assert back.shape == a.shape
    np.testing.assert_allclose(back, np.clip(a, -1, 1), atol=1.5 / 32767)
    # stereo: mixed down to mono; 22.05 kHz: resampled to 16 kHz
    st = decode_sound("st.wav", _wav(a[:8000], 16000, channels=2))
    assert st.shape == (8000,)
    res = decode_sound(
        "r.wav", _wav(np.sin(np.arange(22050) / 22050 * 2 * np.pi * 440).astype(np.float32) * 0.5, 22050)
    )
    assert abs(len(res) - SR) <= 32


@pytest.mark.parametrize("data", [b"", b"RIFF\x24\x00\x00\x00WAVEfmt nonsense", b"\x00" * 300, b"not a sound at all"])
def test_corrupt_sound_bytes_give_a_readable_error(data):
    with pytest.raises(ValueError, match=r"cannot read 'broken\.wav' as sound"):
        decode_sound("broken.wav", data)


def test_image_decoder():
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((64, 48, 3), 200, np.uint8)).save(buf, format="PNG")
    img = decode_image("grey.png", buf.getvalue())
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and (img == 200).all()
    with pytest.raises(ValueError, match=r"cannot read 'x\.png' as image"):
        decode_image("x.png", b"\x89PNG but not really")


def test_upload_files_reads_ipywidgets_7_and_8_values():
    assert upload_files(()) == [] and upload_files(None) == []
    assert upload_files(_upload_value("a.wav", b"abc")) == [("a.wav", b"abc")]
    assert upload_files({"b.wav": {"metadata": {}, "content": b"xyz"}}) == [("b.wav", b"xyz")]


def test_spectrogram_is_on_a_fixed_scale():
    a = catalogue_sound("engine", "city")
    soft, loud = spectrogram_image(a * 0.1), spectrogram_image(a)
    assert soft.shape == loud.shape == (128, 256, 3) and soft.dtype == np.uint8
    assert loud.astype(float).mean() > soft.astype(float).mean() + 5  # louder looks brighter


# --------------------------------------------------------------------------------------------
# explore_once (smoke models)
# --------------------------------------------------------------------------------------------
def test_explore_once_result_and_settings(smoke):
    stages = []
    r = explore_once(smoke, "horn", "beach", 3, seed=1, n=2, progress=lambda s, i, k: stages.append((s, i, k)))
    assert r["images"].shape == (2, 32, 32, 3) and r["images"].dtype == np.uint8
    assert r["settings"] == dict(
        sound="horn",
        background="beach",
        volume_db=3.0,
        second=None,
        mix_db=None,
        image=None,
        seed=1,
        guidance=smoke.backbones.guidance,  # None: the backbones' (the profile's sampling.guidance)
        n=2,
        method="generate",
        strength=None,
    )
    assert r["method"] == "generate" and r["input_image"] is None and len(r["summary"]) == 2
    assert r["report"]["present"].shape == (2, 8) and r["report"]["size"].shape == (2, 8)
    np.testing.assert_allclose(r["audio"], catalogue_sound("horn", "beach") * 10 ** (3 / 20), rtol=1e-6)
    assert [s for s, _, _ in stages] == list(STAGES) and stages[-1][2] == len(STAGES)
    # the plain path is exactly Sound2Image.generate on the catalogue sound at that volume
    ref = smoke.generate(catalogue_sound("horn", "beach") * 10 ** (3 / 20), sr=SR, n=2, seed=1)
    np.testing.assert_array_equal(r["images"], ref)


def test_explore_once_same_seed_same_images_and_knobs_matter(smoke):
    base = explore_once(smoke, "bell", "meadow", 0, seed=0, n=2)["images"]
    np.testing.assert_array_equal(explore_once(smoke, "bell", "meadow", 0, seed=0, n=2)["images"], base)
    for kw in (
        dict(seed=1),
        dict(volume_db=-12),
        dict(guidance=4.0),
        dict(sound_class="water"),
        dict(background="night"),
    ):
        args = dict(sound_class="bell", background="meadow", volume_db=0, seed=0, n=2) | kw
        assert not np.array_equal(explore_once(smoke, **args)["images"], base), kw


def test_explore_once_mixing_path_is_compose(smoke):
    r = explore_once(smoke, "bell", "meadow", -3, second_class="water", mix_db=-6, seed=2, n=2)
    assert r["method"] == "compose" and r["settings"]["second"] == "water" and r["settings"]["mix_db"] == -6.0
    a, b = catalogue_sound("bell", "meadow"), catalogue_sound("water", "meadow", slot=1)
    g = SOURCE_WEIGHT * smoke.backbones.compose_guidance  # the explorer's default: each source in its own band
    ref = smoke.generate_mix([a, b], [-3, -9], n=2, seed=2, sr=SR, weight=g)
    np.testing.assert_array_equal(r["images"], ref)
    np.testing.assert_allclose(r["audio"], a * 10 ** (-3 / 20) + b * 10 ** (-9 / 20), rtol=1e-5, atol=1e-7)


def test_explore_once_edit_path_is_edit_image(smoke):
    from s2i.method.edit import EDIT_STRENGTH, edit_image

    r = explore_once(smoke, "drum", "city", 0, image="beach", seed=3, n=2)
    assert r["method"] == "edit" and r["settings"]["image"] == "still:beach"
    assert r["settings"]["strength"] == EDIT_STRENGTH and r["settings"]["guidance"] is None  # edits weigh their own
    np.testing.assert_array_equal(r["input_image"], still_image("beach"))
    ref = edit_image(
        smoke,
        still_image("beach"),
        catalogue_sound("drum", "city"),
        SR,
        gain_db=0,
        seed=3,
        n=2,
    )  # the explorer's defaults: edit_image's
    np.testing.assert_array_equal(r["images"], ref)
    arr = explore_once(smoke, "drum", "city", 0, image=still_image("beach"), image_name="mine", seed=3, n=2)
    assert arr["settings"]["image"] == "mine"
    np.testing.assert_array_equal(arr["images"], r["images"])


def test_explore_once_caches_embeddings_by_key(smoke):
    cache = EmbeddingCache()
    explore_once(smoke, "bird", "night", 0, seed=0, n=1, cache=cache)
    assert (cache.hits, cache.misses) == (0, 1)
    explore_once(smoke, "bird", "night", 0, seed=5, guidance=3.0, n=1, cache=cache)  # seed/guidance: no re-encoding
    assert (cache.hits, cache.misses) == (1, 1)
    explore_once(smoke, "bird", "night", 6, seed=5, n=1, cache=cache)  # a new volume is a new embedding
    assert cache.misses == 2


def test_explore_once_rejects_bad_input(smoke):
    with pytest.raises(ValueError, match="unknown background"):
        explore_once(smoke, "bell", "moon")
    with pytest.raises(ValueError, match="mono"):
        explore_once(smoke, sound=np.zeros((2, 100), np.float32))


# --------------------------------------------------------------------------------------------
# the widget, driven from code (smoke models)
# --------------------------------------------------------------------------------------------
def test_explorer_starts_with_a_result_and_outputs(smoke):
    ex = Explorer(smoke, "bell", "meadow", n=2)
    r = ex.result
    assert r is not None and ex.n_runs == 1 and ex.error is None
    np.testing.assert_array_equal(r["images"], explore_once(smoke, "bell", "meadow", 0, n=2)["images"])
    assert ex.images.value[:8] == b"\x89PNG\r\n\x1a\n" and ex.spectrogram.value[:4] == b"\x89PNG"
    assert ex.player.value[:4] == b"RIFF" and ex.player.format == "wav"
    assert ex.status.value.startswith("done") and ex.progress.value == len(STAGES)
    assert "judge" in ex.judged.value and ex.input_box.layout.display == "none"
    assert ex.second_class.value == "none" and ex.image_choice.value == "none"  # "off" shows as "none"
    assert all(getattr(ex, w).continuous_update is False for w in ("volume", "mix", "guidance", "seed"))
    assert "s2i-explorer" in ex.box._dom_classes


def test_explorer_volume_changes_the_result(smoke):
    ex = Explorer(smoke, n=2)
    r0, png0, wav0 = ex.result, ex.images.value, ex.player.value
    ex.volume.value = 6  # regenerates at once (auto)
    r1 = ex.result
    assert r1 is not r0 and r1["settings"]["volume_db"] == 6.0 and ex.n_runs == 2
    assert not np.array_equal(r1["images"], r0["images"]) and ex.images.value != png0 and ex.player.value != wav0
    ex.generate_button.click()  # same settings, regenerated: the same images
    assert ex.n_runs == 3 and ex.result is not r1
    np.testing.assert_array_equal(ex.result["images"], r1["images"])
    ex.volume.value = 0  # back: the first images again
    np.testing.assert_array_equal(ex.result["images"], r0["images"])


def test_explorer_without_auto_waits_for_the_button(smoke):
    ex = Explorer(smoke, n=2, auto=False)
    r0 = ex.result
    ex.seed.value = 5
    ex.guidance.value = 3.0
    assert ex.result is r0 and ex.n_runs == 1  # nothing ran yet
    ex.generate_button.click()
    assert ex.result["settings"]["seed"] == 5 and ex.result["settings"]["guidance"] == 3.0
    assert not np.array_equal(ex.result["images"], r0["images"])


def test_explorer_same_seed_same_images(smoke):
    ex = Explorer(smoke, "engine", "city", n=2)
    ex.seed.value = 3
    first = ex.result["images"]
    ex.seed.value = 4
    assert not np.array_equal(ex.result["images"], first)
    misses = ex.cache.misses
    ex.seed.value = 3
    np.testing.assert_array_equal(ex.result["images"], first)
    assert ex.cache.misses == misses  # only the sampling noise changed: no re-encoding


def test_explorer_second_sound_switches_the_mixing_path(smoke):
    ex = Explorer(smoke, "bell", "meadow", n=2)
    r0 = ex.result
    ex.second_class.value = "water"
    r1 = ex.result
    assert r1["method"] == "compose" and r1["settings"]["second"] == "water"
    np.testing.assert_array_equal(
        r1["images"], explore_once(smoke, "bell", "meadow", 0, second_class="water", n=2)["images"]
    )
    ex.mix.value = -12  # the second sound softer: another picture
    assert ex.result["settings"]["mix_db"] == -12.0 and not np.array_equal(ex.result["images"], r1["images"])
    ex.second_class.value = "none"
    assert ex.result["method"] == "generate" and ex.result["settings"]["mix_db"] is None
    np.testing.assert_array_equal(ex.result["images"], r0["images"])


def test_explorer_edits_a_still(smoke):
    ex = Explorer(smoke, "horn", "meadow", n=2)
    ex.image_choice.value = "night"
    assert ex.result["method"] == "edit" and ex.result["settings"]["image"] == "still:night"
    assert ex.input_box.layout.display is None and ex.input_image.value[:4] == b"\x89PNG"
    ex.image_choice.value = "none"
    assert ex.result["method"] == "generate" and ex.input_box.layout.display == "none"


def test_explorer_wav_upload(smoke):
    ex = Explorer(smoke, "bell", "meadow", n=2)
    r0 = ex.result
    snd = catalogue_sound("siren", "night")
    ex.sound_upload.value = _upload_value("siren.wav", _wav(snd, SR))
    r = ex.result
    assert ex.error is None and ex.sound_source.value == "upload" and ex.n_runs == 2
    assert r["settings"]["sound"] == "upload:siren.wav" and r["method"] == "generate"
    np.testing.assert_allclose(r["audio"], snd, atol=1.5 / 32767)
    np.testing.assert_array_equal(
        r["images"], explore_once(smoke, sound=decode_sound("s.wav", _wav(snd, SR)), n=2)["images"]
    )
    assert not np.array_equal(r["images"], r0["images"])
    ex.volume.value = -6  # the volume applies to the upload too
    np.testing.assert_allclose(ex.result["audio"], r["audio"] * 10 ** (-6 / 20), rtol=1e-5)
    ex.sound_source.value = "catalogue"  # back to the catalogue
    assert ex.result["settings"]["sound"] == "bell"


def test_explorer_corrupt_upload_shows_a_readable_error(smoke):
    ex = Explorer(smoke, n=2)
    r0 = ex.result
    ex.sound_upload.value = _upload_value("broken.wav", b"RIFF\x24\x00\x00\x00WAVEfmt garbage!")  # no exception
    assert ex.result is r0 and ex.sound_source.value == "catalogue"
    assert "broken.wav" in ex.error and ex.status.value.startswith("⚠") and "broken.wav" in ex.status.value
    assert ex.progress.bar_style == "danger"
    ex.image_upload.value = _upload_value("photo.jpg", b"\xff\xd8\xff garbage", "image/jpeg")
    assert ex.result is r0 and ex.image_choice.value == "none" and "photo.jpg" in ex.status.value
    ex.sound_source.value = "upload"  # asking for an upload that never arrived: an error, not an exception
    assert ex.result is r0 and "no sound uploaded" in ex.error
    ex.sound_source.value = "catalogue"
    ex.generate_button.click()  # recovers
    assert ex.error is None and ex.status.value.startswith("done") and ex.progress.bar_style == "success"


def test_explorer_image_upload(smoke):
    from PIL import Image

    ex = Explorer(smoke, n=2)
    buf = io.BytesIO()
    Image.fromarray(np.repeat(np.repeat(still_image("city"), 3, 0), 3, 1)).save(buf, format="PNG")  # 96x96
    ex.image_upload.value = _upload_value("city.png", buf.getvalue(), "image/png")
    assert ex.error is None and ex.image_choice.value == "upload"
    assert ex.result["method"] == "edit" and ex.result["settings"]["image"] == "city.png"
    assert ex.result["input_image"].shape == (32, 32, 3)


# --------------------------------------------------------------------------------------------
# behaviour (the trained toy models): louder -> bigger, a second sound -> a second object
# --------------------------------------------------------------------------------------------
def test_toy_louder_is_bigger(toy):
    """Mean judged radius of the heard class (0 when absent) over classes x seeds: at -12 dB it
    is smaller than at +6 dB (claim 8)."""
    classes, seeds = ["bell", "horn", "engine", "water", "siren", "drum"], [0, 1]
    sizes = {}
    for g in (-12, 6):
        s = []
        for i, c in enumerate(classes):
            for seed in seeds:
                r = explore_once(toy, c, world.BACKGROUNDS[i % 4], g, seed=seed, n=2)
                s.append(judged_size(r["report"], np.full(2, world.class_index(c))).mean())
        sizes[g] = float(np.mean(s))
    assert sizes[-12] < sizes[6], sizes


def test_toy_second_sound_adds_an_object(toy):
    """Number of classes the judge sees present, averaged over pairs x seeds: with the second
    sound mixed in (0 dB relative) it is larger than with the first sound alone, and the
    second sound's class is present more often (claims 13-14)."""
    pairs = [("bell", "water"), ("horn", "bird"), ("engine", "siren"), ("drum", "buzzer"), ("bird", "engine")]
    n_one, n_two, p_one, p_two = [], [], [], []
    for i, (a, b) in enumerate(pairs):
        bg = world.BACKGROUNDS[i % 4]
        for seed in (0, 1):
            one = explore_once(toy, a, bg, 0, seed=seed, n=2)["report"]
            two = explore_once(toy, a, bg, 0, second_class=b, mix_db=0, seed=seed, n=2)["report"]
            n_one.append(one["present"].sum(1).mean())
            n_two.append(two["present"].sum(1).mean())
            p_one.append(one["present"][:, world.class_index(b)].mean())
            p_two.append(two["present"][:, world.class_index(b)].mean())
    assert np.mean(n_two) > np.mean(n_one), (np.mean(n_one), np.mean(n_two))
    assert np.mean(p_two) > np.mean(p_one), (np.mean(p_one), np.mean(p_two))
