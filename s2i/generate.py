"""Audio -> image (claims 6, 7, 17): the trained audio encoder puts a sound in the image
embedding space and the pretrained generator draws it.

    s2i = Sound2Image.from_run("results", profile="toy", model_dir="models/toy")
    images = s2i.generate("dog.wav", n=4, seed=0)          # uint8 (4, 32, 32, 3)
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .audio import AudioEncoder, encode_mels, log_mel
from .backbones import load_backbones
from .paths import resolve

SR = 16000


AMBIENCE_DB = -20.0  # a recording turned down this much: the object is gone, its place's ambience is not
REGION_SOFTNESS = 2.0  # px: width of the sigmoid edge between the regions of composed guidance terms
MIX_CANDIDATES = 4  # a mix draws this many candidates per image and keeps the one nearest every source


def band_regions(n: int, size: int, seed: int = 0, softness: float = REGION_SOFTNESS,
                 split: str = "any") -> torch.Tensor:
    """``n`` soft regions that tile a ``size`` x ``size`` image: equal bands, side by side
    (``split="columns"``), stacked (``"rows"``) or either (``"any"``, drawn from ``seed``), in
    an order drawn from ``seed``; sigmoid edges ``softness`` px wide; they sum to 1 at every
    pixel. (n, size, size) float32; ``n == 1``: the whole image."""
    if n < 1:
        raise ValueError(f"need at least one region, got {n}")
    if split not in ("any", "columns", "rows"):
        raise ValueError(f"unknown split {split!r} (any, columns, rows)")
    if n == 1:
        return torch.ones(1, size, size)
    rng = np.random.default_rng([0x5E61, int(seed)])
    vertical = bool(rng.integers(2))  # True: stacked bands (the band index varies down the rows)
    if split != "any":
        vertical = split == "rows"
    order = rng.permutation(n)
    x = torch.arange(size, dtype=torch.float32) + 0.5
    edges = [size * j / n for j in range(1, n)]
    # cumulative sigmoids: s_j(x) = P(x is past edge j); band j = s_{j-1} - s_j
    s = [torch.ones(size)] + [torch.sigmoid((x - e) / softness) for e in edges] + [torch.zeros(size)]
    bands = torch.stack([s[j] - s[j + 1] for j in range(n)])[order]  # (n, size)
    return (bands[:, :, None].expand(n, size, size) if vertical else bands[:, None, :].expand(n, size, size)).contiguous()


def mix_term_masks(n_sources: int, ambience_db: float | None, size: int, seed: int = 0,
                   softness: float = REGION_SOFTNESS) -> torch.Tensor:
    """Spatial masks (K, size, size) for the terms of :func:`mix_conditions` (same order):
    the place term everywhere, each source's terms in its own band (:func:`band_regions`)."""
    bands = band_regions(n_sources, size, seed, softness)
    masks = [] if ambience_db is None else [torch.ones(size, size)]
    for b in bands:
        masks += [b] if ambience_db is None else [b, b]
    return torch.stack(masks)


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
    return np.stack([audio[s:s + S] for s in starts])


class Sound2Image:
    """The product's core: audio (file path or array) -> image embedding -> images."""

    def __init__(self, backbones, audio_encoder: AudioEncoder, window_s: float = 0.5):
        self.backbones = backbones
        self.audio_encoder = audio_encoder.eval()
        self.window_s = window_s

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike = "results", profile: str = "toy",
                 model_dir: str | os.PathLike = "models/toy", window_s: float = 0.5,
                 full_params: dict | None = None) -> "Sound2Image":
        """Load the backbones of ``profile`` and the audio encoder trained in ``run_dir``."""
        enc_dir = resolve(run_dir) / "alignment" / "audio_encoder"
        if not (enc_dir / "audio_encoder.safetensors").exists():
            raise FileNotFoundError(f"{enc_dir}: no trained audio encoder; run the pipeline first (dvc repro alignment)")
        return cls(load_backbones(profile, model_dir, full_params), AudioEncoder.load(enc_dir), window_s)

    def load_audio(self, audio: str | os.PathLike | np.ndarray, sr: int | None = None) -> np.ndarray:
        """A path (any format PyAV decodes) or an array with its sample rate -> mono 16 kHz."""
        if isinstance(audio, (str, os.PathLike)):
            from .media import read_audio

            return read_audio(audio, SR)
        if sr is None:
            raise ValueError("an audio array needs its sample rate (sr=...)")
        return to_mono_16k(audio, sr)

    @torch.no_grad()
    def embed_windows(self, windows: np.ndarray) -> torch.Tensor:
        """(N, S) 16 kHz windows -> (N, D) Z^A."""
        return encode_mels(self.audio_encoder, log_mel(windows))

    def embed_audio(self, audio, sr: int | None = None, hop_s: float | None = None) -> torch.Tensor:
        """A whole sound -> one (D,) embedding: the mean of its windows' embeddings."""
        a = self.load_audio(audio, sr)
        return self.embed_windows(windows_of(a, self.window_s, hop_s)).mean(0)

    def generate(self, audio, sr: int | None = None, n: int = 4, seed: int = 0, guidance: float | None = None,
                 steps: int | None = None, **kw) -> np.ndarray:
        """Audio -> ``n`` images (uint8 (n, H, W, 3)); the same seed gives the same images."""
        z = self.embed_audio(audio, sr)[None]
        return self.backbones.generate(z, n_per=n, guidance=guidance, steps=steps, seed=seed, **kw)

    def generate_mix(self, sounds: list, gains_db: list[float] | None = None, n: int = 1, seed: int = 0,
                     sr: int | None = None, weight: float | None = None,
                     ambience_db: float | None = AMBIENCE_DB, ambience_weight: float | None = None,
                     regions: bool = True, candidates: int = MIX_CANDIDATES, steps: int | None = None) -> np.ndarray:
        """Several sound sources -> ``n`` images with every source's object (claims 13-14).

        Each source (a path, or an array with ``sr``), scaled by its gain in dB, is embedded on its
        own and gives its own terms of composed guidance (:func:`compose_generate`), so the
        objects stay distinct and each is drawn at the size its own level implies. See
        :func:`mix_conditions` for the terms and weights (``weight``, ``ambience_db``,
        ``ambience_weight``). With ``regions`` (default) each source's terms act in its own band
        of the picture (:func:`band_regions`, drawn from ``seed``): every term sees the same
        noisy image, so unconstrained terms tend to draw their objects at the same spot, one on
        top of the other (:func:`mix_term_masks`). Each image is the best of ``candidates``
        drawn ones, by :func:`pick_nearest_sources` (1: no choice). ``steps``: sampling steps
        (default: the generator's)."""
        gains_db = gains_db or [0.0] * len(sounds)
        if len(gains_db) != len(sounds):
            raise ValueError(f"{len(sounds)} sounds but {len(gains_db)} gains")
        audio = [self.load_audio(s, sr) * 10 ** (g / 20) for s, g in zip(sounds, gains_db)]
        conds, weights = mix_conditions(lambda a: self.embed_audio(a, SR)[None], audio,
                                        self.backbones.generator.cfg.guidance, weight, ambience_db, ambience_weight)
        return compose_mix(self.backbones, conds, weights, n, seed, ambience_db is not None, regions, candidates,
                           steps)


def compose_mix(backbones, conds: list[torch.Tensor], weights: list[float], n: int = 1, seed: int = 0,
                place_term: bool = True, regions: bool = True, candidates: int = MIX_CANDIDATES,
                steps: int | None = None) -> np.ndarray:
    """Draw ``n`` images of a mix from the terms of :func:`mix_conditions` (``conds`` (1, D)
    each; ``place_term``: they start with the place's term, as with ``ambience_db``): each
    source's terms in its own band (``regions``, :func:`mix_term_masks`), each image the best of
    ``candidates`` (:func:`pick_nearest_sources`)."""
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    sources = conds[1::2] if place_term else conds  # each source's own embedding, at its gain
    masks = None
    if regions:
        masks = mix_term_masks(len(sources), AMBIENCE_DB if place_term else None, generator_size(backbones), seed)
    images = compose_generate(backbones, [z.repeat(n * candidates, 1) for z in conds], weights, seed=seed,
                              steps=steps, masks=masks)
    if candidates == 1:
        return images
    return pick_nearest_sources(backbones, images, torch.cat(sources), candidates)


def pick_nearest_sources(backbones, images: np.ndarray, sources: torch.Tensor, candidates: int) -> np.ndarray:
    """Rerank candidates (as DALL-E 2 reranks its samples with CLIP): ``images`` (N * candidates,
    H, W, 3), in groups of ``candidates`` consecutive images, -> the N images each nearest all of
    ``sources`` (K, D): the one whose image-encoder embedding has the highest *smallest* cosine
    similarity to the K sources' embeddings, so a picture that shows only some of the sources
    loses to one that shows them all. Uses the frozen image encoder only (never the judge).
    Measured on three tuning draws of 16 held-out pairs (seeds 1-3, not the reported 0), both
    objects drawn, 4 images per pair, each from 4 candidates: any one candidate 0.67 / 0.70 /
    0.66, the reranked pick 0.81 / 0.81 / 0.80 (a pick that always had both when any candidate
    did: 0.86 / 0.91 / 0.88)."""
    if len(images) % candidates:
        raise ValueError(f"{len(images)} images are not groups of {candidates} candidates")
    e = torch.nn.functional.normalize(backbones.encode_images(images).float(), dim=-1)
    z = torch.nn.functional.normalize(torch.as_tensor(sources).float(), dim=-1)
    score = (e @ z.T).min(dim=1).values.view(-1, candidates)  # (N, candidates)
    best = score.argmax(dim=1) + torch.arange(score.shape[0]) * candidates
    return images[best.numpy()]


def mix_conditions(embed, audio: list[np.ndarray], guidance: float, weight: float | None = None,
                   ambience_db: float | None = AMBIENCE_DB, ambience_weight: float | None = None
                   ) -> tuple[list[torch.Tensor], list[float]]:
    """Composed-guidance terms that put several sources (16 kHz mono arrays, already at their
    gains) into one picture; ``embed``: array -> (1, D) embedding.

    With ``ambience_db`` (default): one term for the place -- the mixture turned down by
    ``ambience_db`` (no object drawn at that level, the ambience still heard), weight
    ``ambience_weight`` (default guidance / 2) -- and, per source, its embedding (+``weight``,
    default ``guidance``) minus the same source turned down (-``weight``): the source's object
    without its ambience. Summing plain per-source terms instead counts the shared ambience
    once per source (the background is over-guided and the objects crowd out: the judge saw
    both objects 0.36 of the time on a tuning draw of held-out pairs, against 0.58 with this).
    With ``ambience_db=None``: one plain term per source at ``weight`` (default guidance / K),
    the ``compose_plain`` method of the mixing study."""
    K = len(audio)
    if ambience_db is None:
        w = weight if weight is not None else guidance / K
        return [embed(a) for a in audio], [w] * K
    q = 10 ** (ambience_db / 20)
    w = weight if weight is not None else guidance
    conds = [embed(mix_audio(audio) * q)]
    weights = [ambience_weight if ambience_weight is not None else guidance / 2]
    for a in audio:
        conds += [embed(a), embed(a * q)]
        weights += [w, -w]
    return conds, weights


def mix_audio(sounds: list[np.ndarray], gains_db: list[float] | None = None) -> np.ndarray:
    """Sum mono 16 kHz sounds (zero-padded to the longest), each scaled by its gain in dB."""
    gains_db = gains_db or [0.0] * len(sounds)
    if len(gains_db) != len(sounds):
        raise ValueError(f"{len(sounds)} sounds but {len(gains_db)} gains")
    n = max(len(s) for s in sounds)
    out = np.zeros(n, np.float32)
    for s, g in zip(sounds, gains_db):
        out[: len(s)] += s * 10 ** (g / 20)
    return out


def generator_size(backbones) -> int:
    """Side of the square images the toy/smoke generator draws."""
    return int(backbones.generator.decoder.unet.config.sample_size)


def _spatial(m, K: int | None, size: int, what: str) -> torch.Tensor:
    """A mask as a float tensor broadcastable to (K?, N, 1, size, size)."""
    m = torch.as_tensor(np.asarray(m, np.float32) if not torch.is_tensor(m) else m).float()
    if m.shape[-2:] != (size, size):
        raise ValueError(f"{what} must be {size}x{size} (the generator's size), got {tuple(m.shape)}")
    if K is None:  # region: (H, W) or (N, H, W)
        return m.reshape(1, 1, size, size) if m.ndim == 2 else m.reshape(-1, 1, size, size)
    if m.shape[0] != K:
        raise ValueError(f"{what}: {m.shape[0]} masks for {K} conditions")
    return m.reshape(K, 1, 1, size, size) if m.ndim == 3 else m.reshape(K, -1, 1, size, size)


@torch.no_grad()
def compose_generate(backbones, conds: list[torch.Tensor], weights: list[float], seed: int = 0,
                     steps: int | None = None, init_images: np.ndarray | None = None, strength: float = 1.0,
                     batch: int = 64, shared_noise: bool = False, masks=None, region=None) -> np.ndarray:
    """Draw images guided by several embeddings at once (composable classifier-free guidance,
    Liu et al. 2022): ``x0 = x0_uncond + sum_k w_k m_k (x0(z_k) - x0_uncond)``.

    Used to put several sound sources in one picture (each source's embedding is one concept,
    so the objects stay distinct) and to edit an image (the image's own embedding and the
    sound's, starting from the noised input image: SDEdit). ``conds``: K tensors (N, D);
    ``weights``: K guidance weights; ``init_images``: optional uint8 (N, H, W, 3) with
    ``strength`` in (0, 1] (1 = start from pure noise); ``shared_noise``: the same starting
    noise for every item (video frames stay consistent). Toy/smoke backbones only.

    ``masks``: optional spatial weights of the terms, (K, H, W) or (K, N, H, W) in [0, 1]
    (``m_k``; default 1 everywhere): a term only guides where its mask is on, as in
    region-based composition (MultiDiffusion, Bar-Tal et al. 2023). ``region``: optional
    (H, W) or (N, H, W) in [0, 1], with ``init_images``: the generator only draws inside it;
    outside, every step's ``x0`` is the input image's (blended diffusion, Avrahami et al.
    2022), so what lies outside the region is kept exactly and the inside is drawn to fit it.
    """
    from .backbones import to_tensor, to_uint8

    gen = getattr(backbones, "generator", None)
    if gen is None or not hasattr(gen, "decoder"):
        raise NotImplementedError("composed guidance needs the toy/smoke generator (the full profile's "
                                  "unCLIP pipeline takes one image embedding)")
    if len(conds) != len(weights) or not conds:
        raise ValueError(f"{len(conds)} conditions but {len(weights)} weights")
    N = conds[0].shape[0]
    if any(c.shape != conds[0].shape for c in conds):
        raise ValueError(f"all conditions must have the same shape, got {[tuple(c.shape) for c in conds]}")
    dec, sch = gen.decoder, gen.scheduler
    steps = steps or gen.cfg.sample_steps
    dev = gen.device
    g = torch.Generator().manual_seed(seed)
    shape = (1 if shared_noise else N, 3, dec.unet.config.sample_size, dec.unet.config.sample_size)
    noise = torch.randn(shape, generator=g).expand(N, -1, -1, -1)
    x0_init = None if init_images is None else to_tensor(init_images).to(dev)
    size = dec.unet.config.sample_size
    mk = None if masks is None else _spatial(masks, len(conds), size, "masks").to(dev)
    rg = None
    if region is not None:
        if x0_init is None:
            raise ValueError("region needs init_images (what to keep outside it)")
        rg = _spatial(region, None, size, "region").to(dev)
    w = torch.tensor(weights, dtype=torch.float32, device=dev)
    out = []
    for s in range(0, N, batch):
        x = noise[s:s + batch].to(dev)
        B = x.shape[0]
        cs = torch.stack([c[s:s + batch].float() for c in conds]).to(dev)  # (K, B, D)
        K = cs.shape[0]
        sch.set_timesteps(steps)
        timesteps = sch.timesteps
        if x0_init is not None and strength < 1.0:  # 1. SDEdit: start part-way from the noised input image
            k = min(int(round(steps * (1 - strength))), steps - 1)
            timesteps = timesteps[k:]
            x = sch.add_noise(x0_init[s:s + batch], x, timesteps[:1].repeat(B))
        e_all = torch.cat([torch.zeros(B, cs.shape[-1], device=dev), cs.reshape(K * B, -1)])  # (uncond + K conds)
        for t in timesteps:
            # 2. one batched pass: unconditional and every condition
            xx = x.repeat(K + 1, 1, 1, 1)
            tt = t.repeat(xx.shape[0])
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=gen.cfg.bf16):
                pred = dec(xx, tt, e_all).float()
            pu, pc = pred[:B], pred[B:].view(K, B, *pred.shape[1:])
            terms = w.view(K, 1, 1, 1, 1) * (pc - pu)
            if mk is not None:
                terms = terms * (mk if mk.shape[1] == 1 else mk[:, s:s + batch])
            x0 = pu + terms.sum(0)
            if rg is not None:  # blended diffusion: outside the region, the input
                r = rg if rg.shape[0] == 1 else rg[s:s + batch]
                x0 = r * x0 + (1 - r) * x0_init[s:s + batch]
            # 3. DDIM step
            x = sch.step(x0, t, x).prev_sample
        out.append(x.cpu())
    return to_uint8(torch.cat(out))
