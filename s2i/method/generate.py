"""Audio -> image (claims 6, 7, 17): the trained audio encoder puts a sound in the image
embedding space and the pretrained generator draws it.

    s2i = Sound2Image.from_run("results", profile="toy", model_dir="models/toy")
    images = s2i.generate("dog.wav", n=4, seed=0)          # uint8 (4, 32, 32, 3)
    best = s2i.generate("dog.wav", n=4, candidates=4)      # each the best of 4, by the image encoder
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import torch

from s2i.backbones import load_backbones
from s2i.backbones.base import Backbones
from s2i.method.mix import MIX_CANDIDATES, compose_mixes, mix_conditions, source_widths
from s2i.models.audio_encoder import SR, AudioEncoder
from s2i.models.prior import EmbeddingPrior
from s2i.paths import resolve


def to_mono_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    """Mono float32 at 16 kHz from an array (S,) or (C, S) / (S, C) at ``sr``.
    ValueError for a sample rate that is not a positive whole number, another shape, or
    samples that are not finite."""
    try:
        whole = float(sr) > 0 and float(sr).is_integer()
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise ValueError(f"the sample rate must be a positive whole number of Hz, got {sr!r}")
    sr = int(sr)
    a = np.asarray(audio, np.float32)
    if a.ndim not in (1, 2):
        raise ValueError(f"audio must be (samples,) or (channels, samples), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("audio samples are not finite (NaN or infinite values)")
    if a.ndim == 2:
        a = a.mean(axis=0 if a.shape[0] <= 8 else 1)
    if sr != SR:
        import torchaudio.functional as AF

        a = AF.resample(torch.from_numpy(a), sr, SR).numpy()
    return a


def windows_of(audio: np.ndarray, window_s: float, hop_s: float | None = None) -> np.ndarray:
    """(N, S) windows of ``window_s`` with hop ``hop_s`` (default half a window); audio
    shorter than one window is zero-padded on both sides into a single window."""
    S = int(round(window_s * SR))
    hop = int(round((hop_s or window_s / 2) * SR))
    if len(audio) <= S:
        pad = S - len(audio)
        return np.pad(audio, (pad // 2, pad - pad // 2))[None]
    starts = np.arange(0, len(audio) - S + 1, hop)
    return np.stack([audio[s : s + S] for s in starts])


def _check_candidates(candidates: int) -> None:
    if int(candidates) != candidates or candidates < 1:
        raise ValueError(f"candidates must be a whole number >= 1, got {candidates!r}")


CANDIDATE_SEED_STRIDE = 1_000_003  # candidate j of a drawing from ``seed`` is drawn from seed + j * stride


def candidate_seeds(seed: int, candidates: int) -> list[int]:
    """The seeds of ``candidates`` drawings of one picture or edit: ``seed`` first (one candidate
    is the plain drawing), then ``seed + j *`` :data:`CANDIDATE_SEED_STRIDE`, far from the
    neighbouring seeds a batch uses (``seed + i``)."""
    _check_candidates(candidates)
    return [int(seed) + j * CANDIDATE_SEED_STRIDE for j in range(int(candidates))]


def best_of(
    backbones: Backbones, embeddings: torch.Tensor, drawn: np.ndarray, candidates: int
) -> tuple[np.ndarray, torch.Tensor]:
    """Pick, in each consecutive group of ``candidates`` pictures of ``drawn``, the one the frozen
    image encoder puts nearest (cosine) to the embedding it was drawn from -- DALL-E's re-ranking
    of its samples by CLIP, here with the encoder whose space the embeddings live in. ``drawn`` is
    what ``backbones.generate(embeddings, n_per=n * candidates)`` returns: the pictures of each
    embedding consecutive, so each of its ``n`` images owns ``candidates`` of them.

    Returns the chosen pictures' (N * n,) indices into ``drawn`` and their cosines."""
    _check_candidates(candidates)
    z = torch.as_tensor(embeddings).float()
    if len(drawn) % (len(z) * candidates):
        raise ValueError(f"{len(drawn)} pictures do not split into {len(z)} embeddings x groups of {candidates}")
    target = z.repeat_interleave(len(drawn) // len(z), 0)
    e = backbones.encode_images(drawn).float()
    cos = torch.nn.functional.cosine_similarity(e, target, dim=1).view(-1, candidates)  # (N * n, K)
    best = cos.argmax(1)
    return (torch.arange(len(best)) * candidates + best).numpy(), cos[torch.arange(len(best)), best]


def draw_best_of(
    backbones: Backbones, embeddings: torch.Tensor, n_per: int = 1, candidates: int = 1, seed: int = 0, **kw
) -> tuple[np.ndarray, torch.Tensor]:
    """Draw ``candidates`` images for each of the ``n_per`` images of each embedding and keep the
    one the image encoder puts nearest to its embedding (:func:`best_of`).

    Returns uint8 (N * n_per, H, W, 3), the ``n_per`` images of each embedding consecutive, and
    their (N * n_per,) cosines. With ``candidates=1`` the images are the backbones' ``generate``
    with the same arguments (the same seed, the same images). ``kw`` goes to ``generate``
    (``guidance``, ``steps``, ``height``/``width``, ``progress``). Drawing costs ``candidates``
    times as much; embedding the candidates, one image encoder pass each."""
    _check_candidates(candidates)
    z = torch.as_tensor(embeddings).float()
    drawn = backbones.generate(z, n_per=n_per * candidates, seed=seed, **kw)
    rows, cos = best_of(backbones, z, drawn, candidates)
    return drawn[rows], cos


class Sound2Image:
    """The product's core: audio (file path or array) -> sound embedding Z^A -> image
    embeddings (the prior's samples, or Z^A itself without a prior) -> images."""

    def __init__(
        self,
        backbones: Backbones,
        audio_encoder: AudioEncoder,
        window_s: float = 0.5,
        cache=None,
        prior: EmbeddingPrior | None = None,
    ):
        """``audio_encoder``: the trained :class:`AudioEncoder`, or a published one
        (:func:`s2i.models.published.load_published_audio_encoder`; use its ``window_s``).
        ``prior``: the trained :class:`~s2i.models.prior.EmbeddingPrior` (None: Z^A is drawn as
        it is, the patent's plain path)."""
        self.backbones = backbones
        self.audio_encoder = audio_encoder.eval()
        self.window_s = window_s
        self.cache = cache  # optional: an object with get(key, compute), e.g. an LRU of embeddings
        self.prior = prior

    def with_cache(self, cache) -> Sound2Image:
        """The same models, with sound and image embeddings memoised in ``cache`` (an object with
        ``get(key, compute)``), keyed by the exact samples or pixels embedded."""
        return Sound2Image(self.backbones, self.audio_encoder, self.window_s, cache, self.prior)

    def without_prior(self) -> Sound2Image:
        """The same models drawing Z^A itself (the baseline the prior is measured against)."""
        return Sound2Image(self.backbones, self.audio_encoder, self.window_s, self.cache, None)

    def image_embeddings(
        self,
        z_audio: torch.Tensor,
        n_per: int = 1,
        seed: int = 0,
        noise: torch.Tensor | None = None,
        shared: bool = False,
    ) -> torch.Tensor:
        """(N, D) sound embeddings -> (N * n_per, D) embeddings to draw, each sound's ``n_per``
        consecutive: the prior's samples (:meth:`EmbeddingPrior.sample`, from ``seed`` or the
        given ``noise``), or each Z^A repeated without a prior. ``shared``: one noise for every
        row (``n_per`` 1), so that embeddings drawn together -- a sound and the same sound turned
        down, a video's frames -- share what the sound leaves open (the object's colour, say)
        and differ only where their sounds do."""
        z = torch.as_tensor(z_audio).float()
        if self.prior is None:
            return z.repeat_interleave(n_per, 0)
        if shared:
            if n_per != 1 or noise is not None:
                raise ValueError("shared noise draws one sample per sound (n_per 1) from the seed")
            g = torch.Generator().manual_seed(int(seed))
            noise = torch.randn(1, z.shape[1], generator=g).expand(len(z), -1)
        return self.prior.sample(z, n_per, seed=seed, noise=noise).to(z.dtype)

    def embed_for_drawing(self, audio: np.ndarray, seed: int = 0) -> torch.Tensor:
        """A 16 kHz sound -> (1, D): the embedding the applications draw (mixing, editing): the
        prior's sample from the seed's shared noise (:meth:`image_embeddings`), or Z^A itself."""
        return self.image_embeddings(self.embed_audio(audio, SR)[None], 1, seed, shared=True)

    def _cached(self, kind: str, x: np.ndarray, compute):
        if self.cache is None:
            return compute()
        x = np.ascontiguousarray(x)
        key = (kind, hashlib.sha1(x.tobytes() + str((x.dtype, x.shape)).encode()).hexdigest()[:16])
        return self.cache.get(key, compute)

    @classmethod
    def from_run(
        cls,
        run_dir: str | os.PathLike = "results",
        profile: str = "toy",
        model_dir: str | os.PathLike = "models/toy",
        window_s: float = 0.5,
        full_params: dict | None = None,
        sample_steps: int | None = None,
        sample_guidance: float | None = None,
    ) -> Sound2Image:
        """Load the backbones of ``profile``, the audio encoder trained in ``run_dir`` and its
        embedding prior where one was trained (``<run_dir>/prior``); ``sample_steps`` and
        ``sample_guidance``: the profile's ``sampling.steps`` and ``sampling.guidance``, see
        :func:`load_backbones`."""
        enc_dir = resolve(run_dir) / "alignment" / "audio_encoder"
        if not (enc_dir / "audio_encoder.safetensors").exists():
            raise FileNotFoundError(
                f"{enc_dir}: no trained audio encoder; run the pipeline first (dvc repro alignment)"
            )
        backbones = load_backbones(profile, model_dir, full_params, sample_steps, sample_guidance)
        prior_dir = resolve(run_dir) / "prior"
        prior = EmbeddingPrior.load(prior_dir) if EmbeddingPrior.exists(prior_dir) else None
        return cls(backbones, AudioEncoder.load(enc_dir), window_s, prior=prior)

    def load_audio(self, audio: str | os.PathLike | np.ndarray, sr: int | None = None) -> np.ndarray:
        """A path (any format PyAV decodes) or an array with its sample rate -> mono 16 kHz."""
        if isinstance(audio, (str, os.PathLike)):
            from s2i.media import read_audio

            return read_audio(audio, SR)
        if sr is None:
            raise ValueError("an audio array needs its sample rate (sr=...)")
        return to_mono_16k(audio, sr)

    @torch.no_grad()
    def embed_windows(self, windows: np.ndarray) -> torch.Tensor:
        """(N, S) 16 kHz windows -> (N, D) Z^A, through the encoder's own front end (log-mels for
        the trained :class:`AudioEncoder`, a spectrogram for a published one)."""
        return self.audio_encoder.embed_windows(windows)

    @torch.no_grad()
    def embed_window_grid(self, signal: np.ndarray, hop: int) -> torch.Tensor:
        """The embeddings of the encoder windows of a 16 kHz ``signal`` that start every ``hop``
        samples (as many as fit): :meth:`embed_windows` of those windows. The trained
        :class:`AudioEncoder` computes the STFT frames they share once
        (:meth:`AudioEncoder.embed_grid`)."""
        S = int(round(self.window_s * SR))
        if isinstance(self.audio_encoder, AudioEncoder):
            return self.audio_encoder.embed_grid(signal, S, hop)
        return self.embed_windows(np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(signal, S)[::hop]))

    def embed_audio(self, audio, sr: int | None = None, hop_s: float | None = None) -> torch.Tensor:
        """A whole sound -> one (D,) embedding: the mean of its windows' embeddings."""
        a = self.load_audio(audio, sr)
        return self._cached(
            f"audio:{hop_s}", a, lambda: self.embed_windows(windows_of(a, self.window_s, hop_s)).mean(0)
        )

    def embed_images(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) images -> (N, D) Z^V by the frozen image encoder."""
        return self._cached("image", images, lambda: self.backbones.encode_images(images))

    def generate(
        self,
        audio,
        sr: int | None = None,
        n: int = 4,
        seed: int = 0,
        guidance: float | None = None,
        steps: int | None = None,
        candidates: int = 1,
        **kw,
    ) -> np.ndarray:
        """Audio -> ``n`` images (uint8 (n, H, W, 3)), each from its own sample of the prior
        (:meth:`image_embeddings`); the same seed gives the same images.
        ``candidates`` > 1: each image is the best of that many drawings, each from its own
        prior sample, re-ranked by the image encoder against the sound (:meth:`draw_from_sounds`).
        ``kw`` goes to the backbones' ``generate``: e.g.
        ``height``/``width`` (a size the generator draws, see
        :meth:`~s2i.backbones.base.Backbones.drawing_size`), ``progress``."""
        z = self.embed_audio(audio, sr)[None]
        return self.draw_from_sounds(z, n, candidates, seed, guidance=guidance, steps=steps, **kw)[0]

    def sound_candidates(
        self, z_audio: torch.Tensor, n_per: int = 1, candidates: int = 1, seed: int = 0, **kw
    ) -> tuple[np.ndarray, torch.Tensor]:
        """Every candidate of :meth:`draw_from_sounds`: uint8 (K, N * n_per, H, W, 3), candidate
        ``j`` drawn from seed ``candidate_seeds(seed, K)[j]`` (its own samples of the embedding
        prior and its own noise), and (K, N * n_per) cosines between each picture's image
        embedding and its sound's Z^A."""
        z = torch.as_tensor(z_audio).float()
        target = z.repeat_interleave(n_per, 0)
        drawn, cos = [], []
        for sd in candidate_seeds(seed, candidates):
            images = self.backbones.generate(self.image_embeddings(z, n_per, sd), seed=sd, **kw)
            e = self.backbones.encode_images(images).float()
            drawn.append(images)
            cos.append(torch.nn.functional.cosine_similarity(e, target, dim=1))
        return np.stack(drawn), torch.stack(cos)

    def draw_from_sounds(
        self, z_audio: torch.Tensor, n_per: int = 1, candidates: int = 1, seed: int = 0, **kw
    ) -> tuple[np.ndarray, torch.Tensor | None]:
        """(N, D) sound embeddings (Z^A) -> uint8 (N * n_per, H, W, 3) pictures, each sound's
        ``n_per`` consecutive, each from its own sample of the prior (:meth:`image_embeddings`),
        and their cosines to their sounds' Z^A (None for one candidate). ``candidates`` > 1: each
        picture is the best of that many drawings, each from its own seed
        (:func:`candidate_seeds`: its own prior sample and its own noise; the first is the plain
        drawing), the one the frozen image encoder puts nearest to its *sound's* embedding --
        DALL-E's re-ranking by CLIP, against the sound, not the prior's sample each candidate was
        drawn from (a candidate drawn from an odd sample would match it). Candidates from one
        prior sample differ only in the diffusion noise, which seldom changes the object: on
        tuning sounds, any of 3 such candidates right 0.955 against one drawing's 0.949, any of 3
        from their own samples 0.977 (docs/decisions/thumbnails.md). ``kw`` goes to the
        backbones' ``generate`` (``guidance``, ``steps``, ``height``/``width``, ``progress``)."""
        _check_candidates(candidates)
        z = torch.as_tensor(z_audio).float()
        if candidates == 1:
            return self.backbones.generate(self.image_embeddings(z, n_per, seed), seed=seed, **kw), None
        drawn, cos = self.sound_candidates(z, n_per, candidates, seed, **kw)
        best = cos.argmax(0)
        rows = torch.arange(drawn.shape[1])
        return drawn[best.numpy(), rows.numpy()], cos[best, rows]

    def generate_mix(
        self,
        sounds: list,
        gains_db: list[float] | None = None,
        n: int = 1,
        seed: int = 0,
        sr: int | None = None,
        weight: float | None = None,
        ambience_db: float | None = None,
        ambience_weight: float | None = None,
        regions: bool = True,
        candidates: int = MIX_CANDIDATES,
        steps: int | None = None,
        guidance: float | None = None,
        size: tuple[int, int] | None = None,
        centred: bool = True,
        widths: str = "level",
    ) -> np.ndarray:
        """Several sound sources -> ``n`` images with every source's object (claims 13-14).

        Each source (a path, or an array with ``sr``), scaled by its gain in dB, is embedded on its
        own and gives its own term of composed guidance (:meth:`s2i.backbones.base.Backbones.compose`),
        so the objects stay distinct and each is drawn at the size its own level implies. See
        :func:`mix_conditions` for the terms and weights (``weight``: default
        :data:`~s2i.method.mix.SOURCE_WEIGHT` x ``guidance`` with ``regions``, guidance / K
        without; ``ambience_db`` and ``ambience_weight``: a term for the place, the earlier
        design). With ``regions`` (default) each source's terms
        act in its own band of the picture, side by side (:func:`mix_term_masks`, drawn from
        ``seed``): every term sees the same noisy image, so unconstrained terms tend to draw
        their objects at the same spot, one on top of the other. With ``centred`` (default, with
        ``regions``) each source's terms are predicted on a view of the picture centred on its
        band, so that the object the sound calls for in the middle of a picture is drawn in the
        middle of its band (:func:`s2i.models.sampler.sample`). Each image is the best of
        ``candidates`` drawn ones, by :func:`pick_nearest_sources` (1: no choice). ``steps``:
        sampling steps and ``guidance``: the guidance scale the weights derive from (defaults:
        the generator's own, ``backbones.compose_guidance``). ``size``: the pictures' (height,
        width), one the generator draws (default its square)."""
        return self.generate_mixes(
            [sounds],
            None if gains_db is None else [gains_db],
            n,
            seed,
            sr,
            weight,
            ambience_db,
            ambience_weight,
            regions,
            candidates,
            steps,
            guidance,
            size,
            centred,
            widths,
        )

    def generate_mixes(
        self,
        mixes: list[list],
        gains_db: list[list[float]] | None = None,
        n: int = 1,
        seed: int = 0,
        sr: int | None = None,
        weight: float | None = None,
        ambience_db: float | None = None,
        ambience_weight: float | None = None,
        regions: bool = True,
        candidates: int = MIX_CANDIDATES,
        steps: int | None = None,
        guidance: float | None = None,
        size: tuple[int, int] | None = None,
        centred: bool = True,
        widths: str = "level",
    ) -> np.ndarray:
        """:meth:`generate_mix` for several mixes of as many sources each, drawn together in the
        sampler's batches (:func:`~s2i.method.mix.compose_mixes`: mix ``m``'s bands from
        ``seed + m``, their widths from its sources' levels). Returns (len(mixes) * n, H, W, 3),
        grouped by mix; one mix gives exactly :meth:`generate_mix`'s images."""
        if widths not in ("level", "equal"):
            raise ValueError(f"unknown band widths {widths!r} (level, equal)")
        gains_db = gains_db or [[0.0] * len(sounds) for sounds in mixes]
        if len(gains_db) != len(mixes):
            raise ValueError(f"{len(mixes)} mixes but {len(gains_db)} lists of gains")
        guidance = self.backbones.compose_guidance if guidance is None else guidance
        terms, weights, shares = [], None, []
        for sounds, gains in zip(mixes, gains_db):
            if len(gains) != len(sounds):
                raise ValueError(f"{len(sounds)} sounds but {len(gains)} gains")
            audio = [self.load_audio(s, sr) * 10 ** (g / 20) for s, g in zip(sounds, gains)]
            conds, weights = mix_conditions(
                lambda a: self.embed_for_drawing(a, seed),
                audio,
                guidance,
                weight,
                ambience_db,
                ambience_weight,
                banded=regions,
            )
            terms.append(conds)
            if widths == "level":
                shares.append(source_widths(audio))
        return compose_mixes(
            self.backbones,
            terms,
            weights,
            n,
            seed,
            ambience_db is not None,
            regions,
            candidates,
            steps,
            size,
            centred,
            shares or None,
        )
