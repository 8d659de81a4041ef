"""The latent toy generator: a small autoencoder (32x32x3 <-> 8x8xC) and a denoiser that draws
in its latent space from an image embedding -- a miniature of Stable unCLIP, the ``full``
profile's generator, which is also a latent model (a VAE around an embedding-conditioned UNet).

Why a latent model for the toy: the pixel generator (:mod:`s2i.models.generator`) learns the
colour, place and size of an object within a CPU budget, but not its shape (circle, ring, cross,
x ... come out as blobs; ``docs/results.md``, "Generator: recipes tried"). Here the autoencoder
carries the drawing of shapes (its reconstructions keep them), and the denoiser only has to place
them in an 8x8 grid of latents. The denoiser is small and FiLM-conditioned on the timestep and
the embedding: FiLM residual convolutions on the grid (:class:`ConvDenoiser`, the default, 0.29 s
a training step on 2 CPU cores) or a residual MLP on the flattened latents
(:class:`LatentDenoiser`, 0.16 s), against 1.4-3.4 s for the pixel UNet, so it can afford the
steps the drawing needs (``docs/results.md``, fourth round).

:class:`LatentGenerator` has the pixel generator's interface (``__call__``, ``compose`` with term
masks and a region, ``save``/``load``) and samples with the same sampler
(:func:`s2i.models.sampler.sample`): masks and regions are averaged down to the latents' grid,
init images are encoded, and with a region the decoded picture is blended with the input at full
resolution, so that outside the region the input is kept exactly.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from s2i.models.common import to_tensor, to_uint8, use_bf16
from s2i.models.generator import GeneratorCfg, ToyGenerator
from s2i.models.sampler import sample
from s2i.utils import atomic_path, write_json


@dataclass
class LatentCfg:
    """The latent generator's own settings (``GeneratorCfg.latent``; the diffusion recipe --
    steps, batch, learning rate, dropout, EMA, sampler -- is :class:`GeneratorCfg`'s)."""

    channels: int = 8  # latent channels: 32x32x3 pictures <-> 8x8xC latents
    ae_halvings: int = 2  # the autoencoder's stride-2 stages: 2 gives an 8x8 grid of latents, 1 a 16x16 one
    ae_width: int = 16  # the autoencoder's width at full resolution (doubled at each halving)
    ae_steps: int = 1500
    ae_batch: int = 64
    ae_lr: float = 1e-3
    ae_latent_noise: float = 0.2  # the decoder also learns to decode latents this far off (x their std)
    denoiser: str = "conv"  # "conv": ConvDenoiser; "mlp": LatentDenoiser (measured with width 1024, depth 4)
    width: int = 128  # the denoiser's width (conv: channels; mlp: hidden units)
    depth: int = 6  # its residual blocks


# ----------------------------------------------------------------------------- the autoencoder
class _Res(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm = nn.GroupNorm(8, c)
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.b(F.gelu(self.a(F.gelu(self.norm(x)))))


class Autoencoder(nn.Module):
    """32x32x3 pictures in [-1, 1] <-> (C, 32 / 2^halvings, 32 / 2^halvings) latents (8x8 with
    the default two halvings): ``halvings`` stride-2 convolutions each way with residual blocks
    between. As with a diffusers VAE, :meth:`encode` returns the latents times
    ``scaling_factor`` (set after training so that they have unit variance) and :meth:`decode`
    divides by it."""

    def __init__(self, channels: int = 8, width: int = 16, halvings: int = 2):
        super().__init__()
        w, c = [width * 2**i for i in range(halvings + 1)], channels
        self.channels, self.factor = c, 2**halvings
        # built layer by layer in the order of use (the order weights are initialised in)
        enc = [nn.Conv2d(3, w[0], 3, padding=1), _Res(w[0])]
        for i in range(halvings):
            enc += [nn.Conv2d(w[i], w[i + 1], 4, 2, 1), _Res(w[i + 1])]
        self.enc = nn.Sequential(*enc, nn.GELU(), nn.Conv2d(w[-1], c, 1))
        dec = [nn.Conv2d(c, w[-1], 3, padding=1), _Res(w[-1])]
        for i in reversed(range(halvings)):
            dec += [nn.ConvTranspose2d(w[i + 1], w[i], 4, 2, 1), _Res(w[i])]
        self.dec = nn.Sequential(*dec, nn.GELU(), nn.Conv2d(w[0], 3, 3, padding=1))
        self.register_buffer("scaling_factor", torch.tensor(1.0))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 32, 32) in [-1, 1] -> (N, C, 8, 8) scaled latents."""
        return self.enc(x) * self.scaling_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, C, 8, 8) scaled latents -> (N, 3, 32, 32), about [-1, 1] (not clamped)."""
        return self.dec(z / self.scaling_factor)

    @torch.no_grad()
    def encode_all(self, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
        """:meth:`encode` of (N, 3, 32, 32) pictures in [-1, 1], ``batch`` at a time, on the
        autoencoder's device."""
        dev = self.scaling_factor.device
        return torch.cat([self.encode(x[s : s + batch].to(dev)) for s in range(0, len(x), batch)])


# ----------------------------------------------------------------------------- the denoiser
def timestep_features(t: torch.Tensor, n: int = 64) -> torch.Tensor:
    """Sinusoidal features (N, n) of diffusion timesteps (0 .. 999)."""
    f = torch.exp(-math.log(1000.0) * torch.arange(n // 2, dtype=torch.float32, device=t.device) / (n // 2))
    a = t.float()[:, None] * f[None]
    return torch.cat([a.sin(), a.cos()], 1)


class _FiLMBlock(nn.Module):
    """A residual MLP block whose normalised input is scaled and shifted by the condition."""

    def __init__(self, width: int, cond: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.film = nn.Linear(cond, 2 * width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.SiLU(), nn.Linear(2 * width, width))

    def forward(self, h, c):
        scale, shift = self.film(c).chunk(2, 1)
        return h + self.mlp(self.norm(h) * (1 + scale) + shift)


class LatentDenoiser(nn.Module):
    """``(z_t, t, e) -> z_0`` on (C, 8, 8) latents: the flattened latents and the embedding in,
    ``depth`` residual MLP blocks, each FiLM-conditioned on the timestep and the embedding (an
    all-zero ``e``, the classifier-free dropout, gives the unconditional prediction)."""

    def __init__(self, embed_dim: int, channels: int = 8, width: int = 1024, depth: int = 4, side: int = 8):
        super().__init__()
        self.embed_dim = embed_dim
        self.shape = (channels, side, side)
        n = channels * side * side
        cond = 256
        self.cond = nn.Sequential(nn.Linear(embed_dim + 64, cond), nn.SiLU(), nn.Linear(cond, cond))
        self.inp = nn.Linear(n + embed_dim, width)
        self.blocks = nn.ModuleList(_FiLMBlock(width, cond) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, n))

    def forward(self, z: torch.Tensor, t: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        c = self.cond(torch.cat([e, timestep_features(t)], 1))
        h = self.inp(torch.cat([z.flatten(1), e], 1))
        for b in self.blocks:
            h = b(h, c)
        return self.out(h).view(-1, *self.shape)


class _FiLMResBlock(nn.Module):
    """A residual block of two 3x3 convolutions; the first one's normalised input is scaled and
    shifted by the condition (as the ResNet blocks of a diffusers UNet with scale-shift)."""

    def __init__(self, width: int, cond: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, width, affine=False)
        self.film = nn.Linear(cond, 2 * width)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.norm2 = nn.GroupNorm(8, width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, h, c):
        scale, shift = self.film(c)[:, :, None, None].chunk(2, 1)
        a = self.conv1(F.silu(self.norm1(h) * (1 + scale) + shift))
        return h + self.conv2(F.silu(self.norm2(a)))


class ConvDenoiser(nn.Module):
    """``(z_t, t, e) -> z_0`` on (C, 8, 8) latents with convolutions, so that a shape is drawn
    the same way wherever it is: the latents, two coordinate channels and a picture-sized linear
    map of the embedding (where things are) go in, then ``depth`` residual blocks FiLM-conditioned
    on the timestep and the embedding (what they are)."""

    def __init__(self, embed_dim: int, channels: int = 8, width: int = 128, depth: int = 6, side: int = 8):
        super().__init__()
        self.embed_dim = embed_dim
        self.shape = (channels, side, side)
        cond = 256
        self.cond = nn.Sequential(nn.Linear(embed_dim + 64, cond), nn.SiLU(), nn.Linear(cond, cond))
        self.to_map = nn.Linear(embed_dim, width * side * side)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys])[None], persistent=False)
        self.inp = nn.Conv2d(channels + 2, width, 3, padding=1)
        self.blocks = nn.ModuleList(_FiLMResBlock(width, cond) for _ in range(depth))
        self.out = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, channels, 3, padding=1))

    def forward(self, z: torch.Tensor, t: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        B = z.shape[0]
        c = self.cond(torch.cat([e, timestep_features(t)], 1))
        h = self.inp(torch.cat([z, self.coords.expand(B, -1, -1, -1)], 1))
        h = h + self.to_map(e).view(B, -1, *self.shape[1:])
        for b in self.blocks:
            h = b(h, c)
        return self.out(h)


# ----------------------------------------------------------------------------- the generator
def _area(m: torch.Tensor | None, side: int) -> torch.Tensor | None:
    """A mask (..., H, W) averaged (area) down to (..., side, side)."""
    if m is None:
        return None
    small = F.interpolate(m.reshape(-1, 1, *m.shape[-2:]), size=(side, side), mode="area")
    return small.reshape(*m.shape[:-2], side, side)


class LatentGenerator(ToyGenerator):
    """The latent toy generator: :class:`ToyGenerator`'s interface and sampler, drawing latents
    with a :class:`ConvDenoiser` or a :class:`LatentDenoiser` and decoding them with an
    :class:`Autoencoder`."""

    kind = "latent"
    clip_sample = False  # x0 predictions are latents of unit variance, not pictures in [-1, 1]

    def __init__(self, denoiser: nn.Module, autoencoder: Autoencoder, cfg: GeneratorCfg, emb_rms: float, image_size=32):
        super().__init__(denoiser, cfg, emb_rms)
        # Drawing runs in channels-last memory: a denoiser pass on the 8x8 grid is 10-20 % faster
        # in that layout on CPU (docs/benchmarks.md, section 5). Only the layout of the weights
        # changes (training is untouched; saved files are contiguous).
        self.decoder.to(memory_format=torch.channels_last)
        self.autoencoder = autoencoder.eval().to(memory_format=torch.channels_last)
        self._image_size = image_size

    @property
    def image_size(self) -> int:
        return self._image_size

    @property
    def noise_shape(self) -> tuple[int, int, int]:
        return tuple(self.decoder.shape)

    def to(self, device: str | torch.device) -> LatentGenerator:
        super().to(device)
        self.autoencoder.to(self.device)
        return self

    @torch.no_grad()
    def _draw(self, conds, weights, noise, steps, init, strength, masks, region, batch, progress, centred=False):
        dev, side = self.device, self.noise_shape[-1]
        c = torch.stack([torch.as_tensor(x).float() for x in conds])
        init_px = None if init is None else to_tensor(init).to(dev)
        z_init = None if init_px is None else self.autoencoder.encode_all(init_px)
        z = sample(
            self.decoder,
            self.scheduler,
            c,
            weights,
            noise.to(dev),
            steps or self.cfg.sample_steps,
            init=z_init,
            strength=strength,
            masks=None if masks is None else _area(masks, side).to(dev),
            region=None if region is None else _area(region, side).to(dev),
            centred=centred,
            bf16=use_bf16(self.cfg.sample_bf16, dev),
            batch=batch,
            progress=progress,
        )
        x = torch.cat([self.autoencoder.decode(z[s : s + 256].to(dev)).cpu() for s in range(0, len(z), 256)])
        if region is not None:  # outside the region, the input itself (not its round trip)
            r = region.cpu()
            x = r * x.clamp(-1, 1) + (1 - r) * init_px.cpu()
        return to_uint8(x)

    def save(self, out_dir: str | os.PathLike) -> None:
        """The denoiser and the autoencoder as safetensors, the diffusers scheduler config, and the
        s2i config (``kind: latent``)."""
        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, module in (("denoiser", self.decoder), ("autoencoder", self.autoencoder)):
            with atomic_path(out_dir / f"{name}.safetensors") as tmp:
                save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, str(tmp))
        self.scheduler.save_pretrained(out_dir / "scheduler")
        c = asdict(self.cfg)
        c["block_out_channels"] = list(c["block_out_channels"])
        meta = dict(kind=self.kind, cfg=c, embed_dim=self.decoder.embed_dim, emb_rms=self.emb_rms)
        write_json(out_dir / "s2i_generator.json", dict(meta, image_size=self.image_size))

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> LatentGenerator:
        """The folder :meth:`save` writes."""
        from safetensors.torch import load_file

        out_dir = Path(out_dir)
        meta = json.loads((out_dir / "s2i_generator.json").read_text())
        cfg = GeneratorCfg(**{**meta["cfg"], "block_out_channels": tuple(meta["cfg"]["block_out_channels"])})
        ae, den = build(cfg, meta["embed_dim"], meta["image_size"])
        ae.load_state_dict(load_file(str(out_dir / "autoencoder.safetensors")))
        den.load_state_dict(load_file(str(out_dir / "denoiser.safetensors")))
        return cls(den, ae, cfg, meta["emb_rms"], meta["image_size"])


def build(cfg: GeneratorCfg, embed_dim: int, image_size: int = 32) -> tuple[Autoencoder, LatentDenoiser]:
    """A fresh (autoencoder, denoiser) pair for ``cfg.latent`` (:class:`LatentCfg`)."""
    lat = LatentCfg(**cfg.latent)
    ae = Autoencoder(lat.channels, lat.ae_width, lat.ae_halvings)
    kinds = {"mlp": LatentDenoiser, "conv": ConvDenoiser}
    if lat.denoiser not in kinds:
        raise ValueError(f"latent denoiser must be one of {sorted(kinds)}, got {lat.denoiser!r}")
    return ae, kinds[lat.denoiser](embed_dim, lat.channels, lat.width, lat.depth, image_size // ae.factor)
