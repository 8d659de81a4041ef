"""The frozen backbones behind one small interface.

* ``encode_images(images) -> (N, D)`` -- the pretrained image encoder (Z^V).
* ``generate(embeddings, ...) -> (N, H, W, 3) uint8`` -- the generator pretrained to draw an
  image from an image embedding (claim 3), a miniature unCLIP decoder.
* :func:`load_backbones` takes the profile's params and returns the right implementation,
  so later stages never know which profile they run.

toy / smoke: the image encoder is an open_clip ViT registered from
``s2i/model_configs/*.json`` and created through open_clip's own factory, trained here
with SimCLR (no labels, no text); the generator is a diffusers ``UNet2DConditionModel``
conditioned on the embedding through ``class_embed_type="projection"`` (added to the
timestep embedding, as Stable unCLIP does) *and* cross-attention to the embedding, trained
with x0-prediction, min-SNR weighting, classifier-free dropout, embedding noise
augmentation and an EMA; sampled with DDIM. full: OpenCLIP + Stable unCLIP (``s2i.full``).
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import world
from .paths import resolve
from .utils import write_json

CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
_registered = False


def register_model_configs() -> None:
    """Register s2i's open_clip architectures (``s2i/model_configs/*.json``) with open_clip,
    the way open_clip's own ``model_configs`` are registered."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train or sample on: ``device`` if given, else ``$S2I_DEVICE``, else CUDA when
    a GPU is present, else the CPU. Random draws always come from CPU generators and are moved to
    the device, so a CPU run is bit-identical whatever machine it runs on."""
    if device is None:
        device = os.environ.get("S2I_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    if isinstance(images, torch.Tensor) and images.dtype != torch.uint8:
        return images
    x = torch.as_tensor(np.asarray(images))
    return x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


# ----------------------------------------------------------------------------- pretraining data
def sample_scenes(n: int, seed: int, p_objects: Sequence[float] = (0.15, 0.6, 0.25)) -> list[world.Scene]:
    """Random still scenes for pretraining: a background and 0, 1 or 2 objects of distinct
    classes with random radius in [R_MIN, R_MAX] and position (fully inside the frame)."""
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(n):
        k = int(rng.choice(len(p_objects), p=p_objects))
        cls = rng.choice(len(world.CLASSES), size=k, replace=False)
        objs = []
        for c in cls:
            r = float(rng.uniform(world.R_MIN, world.R_MAX))
            x, y = rng.uniform(r + 0.5, world.IMG - r - 0.5, size=2)
            objs.append(world.SceneObject(int(c), size=r, x=float(x), y=float(y)))
        scenes.append(world.Scene(int(rng.integers(len(world.BACKGROUNDS))), objs))
    return scenes


def codec_roundtrip(frames: np.ndarray, chunk: int = 32, crf: int = 12) -> np.ndarray:
    """Pass frames through the same H.264 (yuv420p) encode/decode as the world's videos, so
    pretraining stills carry the artefacts of real decoded frames."""
    import tempfile

    from .media import read_video, write_video

    out = []
    with tempfile.TemporaryDirectory() as d:
        for s in range(0, len(frames), chunk):
            p = Path(d) / "c.mp4"
            write_video(p, frames[s:s + chunk], world.FPS, None, crf=crf)
            out.append(read_video(p, need_audio=False).frames)
    return np.concatenate(out)


@dataclass
class StillSet:
    """Pretraining stills with their ground truth (``labels``: presence (N, C) float,
    ``sizes``: radius per class (N, C) px, 0 where absent; ``bg``: (N,) int)."""

    images: np.ndarray
    presence: np.ndarray
    sizes: np.ndarray
    bg: np.ndarray


def make_stills(n: int, seed: int, roundtrip: bool = True) -> StillSet:
    """Render ``n`` random scenes (seeded) and their labels."""
    scenes = sample_scenes(n, seed)
    imgs = np.stack([world.render_still(s) for s in scenes])
    if roundtrip:
        imgs = codec_roundtrip(imgs)
    C = len(world.CLASSES)
    pres, sizes = np.zeros((n, C), np.float32), np.zeros((n, C), np.float32)
    for i, s in enumerate(scenes):
        for o in s.objects:
            pres[i, o.cls] = 1
            sizes[i, o.cls] = o.radius()
    return StillSet(imgs, pres, sizes, np.array([s.background for s in scenes]))


# ----------------------------------------------------------------------------- image encoder (SimCLR)
def augment(x: torch.Tensor, g: torch.Generator, max_shift: int = 3, noise: float = 0.03) -> torch.Tensor:
    """SimCLR views that keep colour and object size: a random translation (replicate
    padding), a horizontal flip and a little pixel noise. No colour jitter, no scale crops."""
    B, _, H, W = x.shape
    p = max_shift
    xp = F.pad(x, (p, p, p, p), mode="replicate")
    dx = torch.randint(0, 2 * p + 1, (B,), generator=g)
    dy = torch.randint(0, 2 * p + 1, (B,), generator=g)
    out = torch.stack([xp[i, :, dy[i]:dy[i] + H, dx[i]:dx[i] + W] for i in range(B)])
    flip = torch.rand(B, generator=g) < 0.5
    out[flip] = out[flip].flip(-1)
    return out + noise * torch.randn(out.shape, generator=g)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent loss over 2B views."""
    z = F.normalize(torch.cat([z1, z2]), dim=-1)  # (2B, D)
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    B = z1.shape[0]
    target = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)])
    return F.cross_entropy(sim, target)


class ImageEncoder(nn.Module):
    """The open_clip model's vision tower (created by open_clip's factory), with the
    normalisation open_clip's preprocess would apply. Input: float (N, 3, H, W) in [-1, 1]."""

    def __init__(self, model_name: str, clip_model: nn.Module | None = None):
        super().__init__()
        import open_clip

        register_model_configs()
        self.model_name = model_name
        self.clip = clip_model if clip_model is not None else open_clip.create_model(model_name, pretrained=None)
        pc = self.clip.visual.preprocess_cfg
        self.register_buffer("mean", torch.tensor(pc["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(pc["std"]).view(1, 3, 1, 1), persistent=False)
        self.embed_dim = int(self.clip.visual.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, D)
        x = ((x + 1) / 2 - self.mean) / self.std
        return self.clip.encode_image(x)

    def save(self, out_dir: str | os.PathLike) -> None:
        """Save as an open_clip checkpoint: the config JSON and the full CLIP state dict (safetensors)."""
        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        cfg = json.loads((CONFIG_DIR / f"{self.model_name}.json").read_text())
        write_json(out_dir / "open_clip_config.json", dict(model_name=self.model_name, model_cfg=cfg))
        sd = {k: v.contiguous() for k, v in self.clip.state_dict().items()}
        tmp = out_dir / ".open_clip_model.safetensors.tmp"
        save_file(sd, str(tmp))
        os.replace(tmp, out_dir / "open_clip_model.safetensors")

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> "ImageEncoder":
        """Load through open_clip's factory: ``create_model(name, pretrained=<checkpoint>)``."""
        import open_clip

        register_model_configs()
        model_dir = Path(model_dir)
        meta = json.loads((model_dir / "open_clip_config.json").read_text())
        ckpt = model_dir / "open_clip_model.safetensors"
        clip = open_clip.create_model(meta["model_name"], pretrained=str(ckpt))
        return cls(meta["model_name"], clip).eval()


@dataclass
class EncoderCfg:
    model: str = "s2i-toy-vit"
    steps: int = 600
    batch: int = 256
    lr: float = 1e-3
    temperature: float = 0.2
    max_shift: int = 3
    bf16: bool = True


def train_encoder(data: StillSet, cfg: EncoderCfg, seed: int, log: Callable[[dict], None] | None = None,
                  device: str | torch.device | None = None) -> ImageEncoder:
    """SimCLR pretraining of the open_clip vision tower on stills (no labels, no text).
    Trains on ``resolve_device(device)``; returns the encoder on the CPU."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    dev = resolve_device(device)
    enc = ImageEncoder(cfg.model)
    head = nn.Sequential(nn.Linear(enc.embed_dim, 256), nn.ReLU(), nn.Linear(256, 128))
    enc.to(dev), head.to(dev)
    params = list(enc.clip.visual.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    x_all = to_tensor(data.images)
    enc.train()
    for step in range(cfg.steps):
        idx = torch.randint(0, len(x_all), (cfg.batch,), generator=g)
        x = x_all[idx]
        v = torch.cat([augment(x, g, cfg.max_shift), augment(x, g, cfg.max_shift)]).to(dev)  # (2B, 3, H, W)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            z = head(enc(v)).float()
        loss = nt_xent(*z.chunk(2), cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 20 == 0 or step == cfg.steps - 1):
            log(dict(part="encoder", step=step, loss=float(loss)))
    return enc.cpu().eval()


@torch.no_grad()
def embed(enc: nn.Module, images: np.ndarray | torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Embed uint8 images with any module taking [-1, 1] tensors; returns (N, D) float32."""
    x = to_tensor(images)
    return torch.cat([enc(x[i:i + batch]) for i in range(0, len(x), batch)]).float()


# ----------------------------------------------------------------------------- judge
class Judge(nn.Module):
    """The measuring instrument: a small CNN trained on real toy frames with their ground
    truth (never on generated images). For any image it reports which classes are present
    (sigmoid per class), each class's radius in px, and the background (softmax)."""

    def __init__(self, n_classes: int = len(world.CLASSES), n_bg: int = len(world.BACKGROUNDS), width: int = 32):
        super().__init__()
        w = width

        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),
                                 nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())

        self.features = nn.Sequential(block(3, w), nn.MaxPool2d(2), block(w, 2 * w), nn.MaxPool2d(2),
                                      block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.trunk = nn.Sequential(nn.Linear(16 * w, 256), nn.ReLU())
        self.presence = nn.Linear(256, n_classes)
        self.size = nn.Linear(256, n_classes)
        self.bg = nn.Linear(256, n_bg)
        self.config = dict(n_classes=n_classes, n_bg=n_bg, width=width)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # (N, 3, 32, 32) in [-1, 1]
        h = self.trunk(self.features(x))
        return dict(presence=self.presence(h), size=self.size(h) * world.R_MAX, bg=self.bg(h))

    @torch.no_grad()
    def report(self, images: np.ndarray | torch.Tensor, batch: int = 512) -> dict[str, np.ndarray]:
        """Judge a batch of uint8 (N, H, W, 3) images: ``p_present`` (N, C), ``present`` (N, C)
        bool (p > 0.5), ``top_class`` (N,), ``size`` (N, C) px, ``bg`` (N,), ``p_bg`` (N, B)."""
        self.eval()
        x = to_tensor(images)
        if x.shape[-1] != world.IMG:
            x = F.interpolate(x, size=(world.IMG, world.IMG), mode="area")
        outs = [self(x[i:i + batch]) for i in range(0, len(x), batch)]
        o = {k: torch.cat([d[k] for d in outs]) for k in outs[0]}
        p = torch.sigmoid(o["presence"]).numpy()
        return dict(p_present=p, present=p > 0.5, top_class=p.argmax(1), size=o["size"].numpy(),
                    bg=o["bg"].argmax(1).numpy(), p_bg=torch.softmax(o["bg"], 1).numpy())

    def save(self, out_dir: str | os.PathLike) -> None:
        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "judge.json", self.config)
        tmp = out_dir / ".judge.safetensors.tmp"
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(tmp))
        os.replace(tmp, out_dir / "judge.safetensors")

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> "Judge":
        from safetensors.torch import load_file

        model_dir = Path(model_dir)
        j = cls(**json.loads((model_dir / "judge.json").read_text()))
        j.load_state_dict(load_file(str(model_dir / "judge.safetensors")))
        return j.eval()


@dataclass
class JudgeCfg:
    steps: int = 1500
    batch: int = 128
    lr: float = 2e-3
    width: int = 32


def train_judge(data: StillSet, cfg: JudgeCfg, seed: int, log: Callable[[dict], None] | None = None,
                device: str | torch.device | None = None) -> Judge:
    """Supervised training of the judge on real toy stills and their ground truth, with
    translation/flip augmentation (no colour changes). Returns the judge on the CPU."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    dev = resolve_device(device)
    judge = Judge(width=cfg.width).to(dev)
    opt = torch.optim.AdamW(judge.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    x_all = to_tensor(data.images)
    pres, sizes, bg = (torch.as_tensor(a) for a in (data.presence, data.sizes, data.bg))
    judge.train()
    for step in range(cfg.steps):
        idx = torch.randint(0, len(x_all), (cfg.batch,), generator=g)
        x = augment(x_all[idx], g, max_shift=1, noise=0.02).to(dev)
        o = judge(x)
        m, s_true, b_true = pres[idx].to(dev), sizes[idx].to(dev), bg[idx].to(dev)
        l_p = F.binary_cross_entropy_with_logits(o["presence"], m)
        l_s = ((o["size"] - s_true) ** 2 * m).sum() / m.sum().clamp(min=1) / world.R_MAX
        l_b = F.cross_entropy(o["bg"], b_true)
        loss = l_p + l_s + l_b
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 50 == 0 or step == cfg.steps - 1):
            log(dict(part="judge", step=step, loss=float(loss), presence=float(l_p), size=float(l_s), bg=float(l_b)))
    return judge.cpu().eval()


# ----------------------------------------------------------------------------- generator (miniature unCLIP decoder)
@dataclass
class GeneratorCfg:
    block_out_channels: tuple[int, ...] = (64, 128, 128)
    layers_per_block: int = 1
    attention_head_dim: int = 32
    attn_levels: int = 1  # how many of the coarsest levels (plus the mid block) cross-attend to the embedding
    n_tokens: int = 4  # the embedding is projected to this many cross-attention tokens
    steps: int = 3000
    batch: int = 64
    lr: float = 5e-4
    cfg_dropout: float = 0.1  # classifier-free guidance: share of batches' embeddings dropped
    max_noise_level: float = 0.1  # embedding noise augmentation (relative to the embedding's RMS)
    min_snr_gamma: float = 5.0
    ema_decay: float = 0.999
    train_timesteps: int = 1000
    sample_steps: int = 25
    guidance: float = 2.0
    bf16: bool = True


class EmbeddingDecoder(nn.Module):
    """UNet2DConditionModel conditioned on an image embedding two ways: the embedding is the
    ``class_labels`` of a ``projection`` class embedding (FiLM through the timestep embedding,
    like Stable unCLIP) and, projected to ``n_tokens`` tokens, the cross-attention context."""

    def __init__(self, embed_dim: int, cfg: GeneratorCfg, unet: nn.Module | None = None,
                 to_tokens: nn.Module | None = None):
        super().__init__()
        from diffusers import UNet2DConditionModel

        n = len(cfg.block_out_channels)
        n_attn = min(cfg.attn_levels, n - 1)  # cross-attention only at the coarsest levels (cheap on CPU)
        self.unet = unet if unet is not None else UNet2DConditionModel(
            sample_size=world.IMG, in_channels=3, out_channels=3,
            block_out_channels=tuple(cfg.block_out_channels), layers_per_block=cfg.layers_per_block,
            down_block_types=("DownBlock2D",) * (n - n_attn) + ("CrossAttnDownBlock2D",) * n_attn,
            up_block_types=("CrossAttnUpBlock2D",) * n_attn + ("UpBlock2D",) * (n - n_attn),
            cross_attention_dim=cfg.block_out_channels[-1], attention_head_dim=cfg.attention_head_dim,
            class_embed_type="projection", projection_class_embeddings_input_dim=embed_dim,
            resnet_time_scale_shift="scale_shift",  # FiLM: the embedding scales and shifts every ResNet block
            norm_num_groups=min(32, cfg.block_out_channels[0]),
        )
        self.to_tokens = to_tokens if to_tokens is not None else nn.Linear(
            embed_dim, cfg.n_tokens * cfg.block_out_channels[-1])
        self.n_tokens = cfg.n_tokens
        self.embed_dim = embed_dim

    def forward(self, x: torch.Tensor, t: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        ctx = self.to_tokens(e).view(B, self.n_tokens, -1)  # (B, K, C)
        return self.unet(x, t, encoder_hidden_states=ctx, class_labels=e).sample


class ToyGenerator:
    """Sampling side of the miniature unCLIP decoder (DDIM + classifier-free guidance)."""

    def __init__(self, decoder: EmbeddingDecoder, cfg: GeneratorCfg, emb_rms: float):
        from diffusers import DDIMScheduler

        self.decoder = decoder.eval()
        self.cfg = cfg
        self.emb_rms = emb_rms
        self.scheduler = DDIMScheduler(num_train_timesteps=cfg.train_timesteps, beta_schedule="squaredcos_cap_v2",
                                       prediction_type="sample", clip_sample=True)

    @torch.no_grad()
    def __call__(self, embeddings: torch.Tensor, n_per: int = 1, guidance: float | None = None,
                 steps: int | None = None, noise_level: float = 0.0, seed: int = 0,
                 init_images: np.ndarray | torch.Tensor | None = None, strength: float = 1.0,
                 batch: int = 64, progress: bool = False) -> np.ndarray:
        """Draw ``n_per`` images per embedding.

        Args:
            embeddings: (N, D) image-space embeddings (from images or from sounds).
            n_per: images per embedding (different noise).
            guidance: classifier-free guidance scale (1 = none); default from the config.
            steps: DDIM steps; default from the config.
            noise_level: Gaussian noise added to the embedding, relative to its RMS (unCLIP's noise_level).
            seed: seeds the sampling noise (same seed, same images).
            init_images: optional uint8 (N, H, W, 3) images to start from (SDEdit): they are
                noised to ``strength`` (0 = keep, 1 = pure noise) and denoised under the embedding.
            strength: see ``init_images``.
        Returns:
            uint8 (N * n_per, H, W, 3), grouped by embedding.
        """
        from tqdm.auto import tqdm

        guidance = self.cfg.guidance if guidance is None else guidance
        steps = self.cfg.sample_steps if steps is None else steps
        e = torch.as_tensor(embeddings).float()
        if e.ndim != 2 or e.shape[1] != self.decoder.embed_dim:
            raise ValueError(f"embeddings must be (N, {self.decoder.embed_dim}), got {tuple(e.shape)}")
        e = e.repeat_interleave(n_per, 0)
        g = torch.Generator().manual_seed(seed)
        if noise_level > 0:
            e = e + noise_level * self.emb_rms * torch.randn(e.shape, generator=g)
        x0_init = None
        if init_images is not None:
            x0_init = to_tensor(init_images).repeat_interleave(n_per, 0)
            if x0_init.shape[0] != e.shape[0]:
                raise ValueError(f"init_images: {x0_init.shape[0] // n_per} images for {e.shape[0] // n_per} embeddings")
        noise = torch.randn((e.shape[0], 3, world.IMG, world.IMG), generator=g)
        dev = self.device
        out = []
        it = range(0, e.shape[0], batch)
        for s in tqdm(it, desc="generate", disable=not progress):
            x0 = None if x0_init is None else x0_init[s:s + batch].to(dev)
            out.append(self._sample(e[s:s + batch].to(dev), noise[s:s + batch].to(dev), guidance, steps,
                                    x0, strength).cpu())
        return to_uint8(torch.cat(out))

    @property
    def device(self) -> torch.device:
        """Where the decoder's weights are (sampling runs there; noise is drawn on the CPU)."""
        p = next(self.decoder.parameters(), None)
        return torch.device("cpu") if p is None else p.device

    def to(self, device: str | torch.device) -> "ToyGenerator":
        self.decoder.to(resolve_device(device))
        return self

    def _sample(self, e, x, guidance, steps, x0_init, strength):
        sch = self.scheduler
        sch.set_timesteps(steps)
        timesteps = sch.timesteps
        if x0_init is not None and strength < 1.0:  # 1. SDEdit: start part-way, from the noised input image
            k = min(int(round(steps * (1 - strength))), steps - 1)
            timesteps = timesteps[k:]
            x = sch.add_noise(x0_init, x, timesteps[:1].repeat(x.shape[0]))
        null = torch.zeros_like(e)
        for t in timesteps:
            # 2. predict x0 with and without the embedding (classifier-free guidance)
            tt = t.repeat(x.shape[0])
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
                if guidance == 1.0:
                    pred = self.decoder(x, tt, e).float()
                else:
                    both = self.decoder(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([e, null])).float()
                    pc, pu = both.chunk(2)
                    pred = pu + guidance * (pc - pu)
            # 3. DDIM step
            x = sch.step(pred, t, x).prev_sample
        return x

    def save(self, out_dir: str | os.PathLike) -> None:
        """diffusers ``save_pretrained`` (safetensors) of the UNet and the scheduler, plus the
        token projection and the s2i config."""
        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        self.decoder.unet.save_pretrained(out_dir / "unet", safe_serialization=True)
        self.scheduler.save_pretrained(out_dir / "scheduler")
        tmp = out_dir / ".to_tokens.safetensors.tmp"
        save_file({k: v.contiguous() for k, v in self.decoder.to_tokens.state_dict().items()}, str(tmp))
        os.replace(tmp, out_dir / "to_tokens.safetensors")
        c = asdict(self.cfg)
        c["block_out_channels"] = list(c["block_out_channels"])
        write_json(out_dir / "s2i_generator.json", dict(cfg=c, embed_dim=self.decoder.embed_dim, emb_rms=self.emb_rms))

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> "ToyGenerator":
        """``UNet2DConditionModel.from_pretrained`` + the token projection."""
        from diffusers import UNet2DConditionModel
        from safetensors.torch import load_file

        out_dir = Path(out_dir)
        meta = json.loads((out_dir / "s2i_generator.json").read_text())
        cfg = GeneratorCfg(**{**meta["cfg"], "block_out_channels": tuple(meta["cfg"]["block_out_channels"])})
        unet = UNet2DConditionModel.from_pretrained(out_dir / "unet")
        tok = nn.Linear(meta["embed_dim"], cfg.n_tokens * cfg.block_out_channels[-1])
        tok.load_state_dict(load_file(str(out_dir / "to_tokens.safetensors")))
        dec = EmbeddingDecoder(meta["embed_dim"], cfg, unet=unet, to_tokens=tok)
        return cls(dec, cfg, meta["emb_rms"])


def train_generator(emb: torch.Tensor, images: np.ndarray, cfg: GeneratorCfg, seed: int,
                    log: Callable[[dict], None] | None = None, ckpt_path: str | os.PathLike | None = None,
                    ckpt_every: int = 500, device: str | torch.device | None = None) -> ToyGenerator:
    """DDPM training of the embedding-conditioned decoder on (image embedding, image) pairs.

    x0 ("sample") prediction with min-SNR-gamma loss weights, classifier-free dropout of the
    embedding, Gaussian noise augmentation of the embedding, bf16 autocast on CPU, an EMA of
    the weights (the EMA is what is saved). Resumes from ``ckpt_path`` when it exists.
    Trains on ``resolve_device(device)`` (noise drawn on the CPU); returns the generator on the CPU."""
    from diffusers import DDPMScheduler

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 2)
    D = emb.shape[1]
    dev = resolve_device(device)
    dec = EmbeddingDecoder(D, cfg).to(dev)
    ema = copy.deepcopy(dec).eval().requires_grad_(False)
    opt = torch.optim.AdamW(dec.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 200) * (0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)) * 0.9 + 0.1))
    ddpm = DDPMScheduler(num_train_timesteps=cfg.train_timesteps, beta_schedule="squaredcos_cap_v2",
                         prediction_type="sample")
    ac = ddpm.alphas_cumprod
    snr = ac / (1 - ac)
    w_t = torch.clamp(snr, max=cfg.min_snr_gamma)  # min-SNR weights for x0 prediction
    x_all = to_tensor(images)
    e_all = emb.float()
    emb_rms = float(e_all.pow(2).mean().sqrt())
    start = 0
    if ckpt_path is not None and Path(ckpt_path).exists():
        ck = torch.load(ckpt_path, weights_only=False, map_location=dev)
        dec.load_state_dict(ck["model"]); ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"]); sched.load_state_dict(ck["sched"]); g.set_state(ck["rng"])
        torch.set_rng_state(ck["torch_rng"])
        start = ck["step"]
    dec.train()
    for step in range(start, cfg.steps):
        idx = torch.randint(0, len(x_all), (cfg.batch,), generator=g)
        x0, e = x_all[idx], e_all[idx]
        B = x0.shape[0]
        # 1. embedding augmentation: noise at a random level, then classifier-free dropout
        lvl = torch.rand(B, 1, generator=g) * cfg.max_noise_level * emb_rms
        e = e + lvl * torch.randn(e.shape, generator=g)
        drop = torch.rand(B, generator=g) < cfg.cfg_dropout
        e = torch.where(drop[:, None], torch.zeros_like(e), e)
        # 2. forward diffusion
        t = torch.randint(0, cfg.train_timesteps, (B,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        xt = ddpm.add_noise(x0, noise, t)
        x0, xt, e, wt, t = x0.to(dev), xt.to(dev), e.to(dev), w_t[t].to(dev), t.to(dev)
        # 3. predict x0, min-SNR weighted MSE
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            pred = dec(xt, t, e)
        loss = ((pred.float() - x0) ** 2).mean(dim=(1, 2, 3))
        loss = (loss * wt).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dec.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            d = min(cfg.ema_decay, (1 + step) / (10 + step))
            for pe, p in zip(ema.parameters(), dec.parameters()):
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
        if log and (step % 25 == 0 or step == cfg.steps - 1):
            log(dict(part="generator", step=step, loss=float(loss)))
        if ckpt_path is not None and ((step + 1) % ckpt_every == 0) and step + 1 < cfg.steps:
            from .utils import atomic_torch_save

            atomic_torch_save(dict(model=dec.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(),
                                   sched=sched.state_dict(), rng=g.get_state(), torch_rng=torch.get_rng_state(),
                                   step=step + 1), ckpt_path)
    return ToyGenerator(ema.cpu(), cfg, emb_rms)


# ----------------------------------------------------------------------------- the interface
class ToyBackbones:
    """toy/smoke backbones: ``encode_images`` (open_clip ViT trained by SimCLR here),
    ``generate`` (miniature unCLIP decoder), and ``judge`` (the measuring instrument)."""

    profile = "toy"

    def __init__(self, encoder: ImageEncoder, generator: ToyGenerator, judge: Judge | None = None):
        self.encoder = encoder.eval()
        self.generator = generator
        self.judge = judge
        self.image_size = world.IMG
        self.embed_dim = encoder.embed_dim

    def to(self, device: str | torch.device | None = None) -> "ToyBackbones":
        """Move the generator (the costly part) to ``resolve_device(device)``; the encoder and the
        judge are small and stay on the CPU. Sampling numerics differ slightly between devices."""
        self.generator.to(resolve_device(device))
        return self

    def encode_images(self, images: np.ndarray | Sequence) -> torch.Tensor:
        """uint8 (N, H, W, 3) images (any square size: resized to 32) -> (N, D) embeddings Z^V."""
        imgs = np.asarray(images)
        if imgs.ndim == 3:
            imgs = imgs[None]
        if imgs.shape[1:3] != (world.IMG, world.IMG):
            from .media import square_resize

            imgs = np.stack([square_resize(im, world.IMG) for im in imgs])
        return embed(self.encoder, imgs)

    def generate(self, embeddings: torch.Tensor, n_per: int = 1, guidance: float | None = None,
                 steps: int | None = None, noise_level: float = 0.0, seed: int = 0, **kw) -> np.ndarray:
        """(N, D) embeddings -> uint8 (N * n_per, 32, 32, 3) images. See :class:`ToyGenerator`."""
        return self.generator(embeddings, n_per=n_per, guidance=guidance, steps=steps,
                              noise_level=noise_level, seed=seed, **kw)

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> "ToyBackbones":
        model_dir = resolve(model_dir)
        missing = [p for p in ("image_encoder/open_clip_model.safetensors", "generator/unet",
                               "judge/judge.safetensors") if not (model_dir / p).exists()]
        if missing:
            raise FileNotFoundError(f"{model_dir}: not a complete s2i backbones folder (missing {missing}); "
                                    "run the pretrain stage: dvc repro pretrain")
        return cls(ImageEncoder.load(model_dir / "image_encoder"), ToyGenerator.load(model_dir / "generator"),
                   Judge.load(model_dir / "judge"))


def load_backbones(profile: str, model_dir: str | os.PathLike | None = None, full_params: dict | None = None):
    """The backbones of a profile: ``toy``/``smoke`` load ``model_dir`` (the pretrain stage's
    output); ``full`` loads OpenCLIP + Stable unCLIP as configured in ``full_params``."""
    if profile in ("toy", "smoke"):
        if model_dir is None:
            raise ValueError("toy/smoke backbones need model_dir")
        return ToyBackbones.load(model_dir)
    if profile == "full":
        from .full import FullBackbones

        return FullBackbones.from_params(full_params or {})
    raise ValueError(f"unknown profile {profile!r} (toy, smoke or full)")


def load_judge(model_dir: str | os.PathLike) -> Judge:
    """The judge of a toy/smoke backbones folder (the full profile is measured on real data)."""
    return Judge.load(resolve(model_dir) / "judge")
