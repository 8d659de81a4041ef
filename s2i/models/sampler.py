"""The one sampler of s2i: DDIM with composed classifier-free guidance, for the toy generator
(pixels) and for Stable unCLIP in the ``full`` profile (latents, :mod:`s2i.backbones.full`).

Every drawing in s2i goes through :func:`sample`: plain generation (one term, the guidance
scale as its weight), mixing several sources (one weighted, masked term per source and the
place, Liu et al. 2022), editing an image or a video (an init image noised to ``strength``:
SDEdit, Meng et al. 2022; a region outside which the input is kept: blended diffusion,
Avrahami et al. 2022) and thumbnails. At each step, with ``x0_u`` the unconditional
prediction and ``x0_k`` the prediction under term ``k``::

    x0 = x0_u + sum_k w_k m_k (x0_k - x0_u)          (masks m_k default to 1 everywhere)
    x0 = r x0 + (1 - r) x0_init                        (with a region r)

then a DDIM step. One term of weight 1 without masks needs no unconditional pass and skips it.
With ``centred`` terms (mixing: one source per band of the picture), each masked term is predicted
on a view of ``x_t`` rolled so that its mask's centre sits at the picture's centre, together with
the unconditional prediction on that view, and both are rolled back::

    x0 = x0_u + sum_k w_k m_k R_k^-1 (x0_k(R_k x_t) - x0_u(R_k x_t))

MultiDiffusion's windows (Bar-Tal et al. 2023) on a fixed canvas: a generator that draws an
object where its embedding puts it (the middle, for a sound) draws it in the middle of the term's
own region, not astride two regions.
A schedule whose last step stops short of t = 0 (``set_alpha_to_one=False``, as in Stable
Diffusion) leaves ``sqrt(1 - alphas_cumprod[0])`` of the noise in its result; with a region the
result is then blended once more, ``x = r x + (1 - r) x0_init``, so that outside the region it is
the input. (With the toy's schedule the last step lands on x0 itself and nothing changes.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def spatial(m, n_terms: int | None, size: int | tuple[int, int], what: str) -> torch.Tensor:
    """A mask as a float tensor broadcastable to (K, N, 1, H, W) (``n_terms`` = K: term masks,
    (K, H, W) or (K, N, H, W)) or to (N, 1, H, W) (``n_terms`` None: a region, (H, W) or
    (N, H, W)); ``size`` is the drawing's (H, W), or its side when square."""
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    m = torch.as_tensor(np.asarray(m, np.float32) if not torch.is_tensor(m) else m).float()
    if m.shape[-2:] != (h, w):
        raise ValueError(f"{what} must be {h}x{w} (the generator's size), got {tuple(m.shape)}")
    if n_terms is None:
        return m.reshape(1, 1, h, w) if m.ndim == 2 else m.reshape(-1, 1, h, w)
    if m.shape[0] != n_terms:
        raise ValueError(f"{what}: {m.shape[0]} masks for {n_terms} conditions")
    return m.reshape(n_terms, 1, 1, h, w) if m.ndim == 3 else m.reshape(n_terms, -1, 1, h, w)


def centring_shifts(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For masks (..., H, W): the whole-cell shifts (dy, dx), each (...,) int64, that move each
    mask's centre of mass to the grid's centre (a mask that is zero everywhere: no shift)."""
    h, w = masks.shape[-2:]
    m = masks.float()
    total = m.sum((-1, -2))
    safe = total.clamp_min(1e-8)
    cy = (m.sum(-1) * torch.arange(h, dtype=torch.float32, device=m.device)).sum(-1) / safe
    cx = (m.sum(-2) * torch.arange(w, dtype=torch.float32, device=m.device)).sum(-1) / safe
    dy = torch.where(total > 0, torch.round((h - 1) / 2 - cy), torch.zeros_like(cy)).long()
    dx = torch.where(total > 0, torch.round((w - 1) / 2 - cx), torch.zeros_like(cx)).long()
    return dy, dx


def roll_each(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Roll each item of x (M, C, H, W) by its own (dy[m], dx[m]) cells, wrapping around:
    ``out[m, :, i, j] = x[m, :, (i - dy[m]) % H, (j - dx[m]) % W]`` (``torch.roll`` per item)."""
    M, C, H, W = x.shape
    iy = (torch.arange(H, device=x.device)[None] - dy[:, None].to(x.device)) % H  # (M, H)
    ix = (torch.arange(W, device=x.device)[None] - dx[:, None].to(x.device)) % W  # (M, W)
    x = torch.gather(x, 2, iy[:, None, :, None].expand(M, C, H, W))
    return torch.gather(x, 3, ix[:, None, None, :].expand(M, C, H, W))


def _rows(m: torch.Tensor | None, s: int, batch: int, dim: int) -> torch.Tensor | None:
    """The rows ``s:s+batch`` of a per-item mask along ``dim`` (a shared mask is kept whole)."""
    if m is None or m.shape[dim] == 1:
        return m
    return m.narrow(dim, s, min(batch, m.shape[dim] - s))


@torch.no_grad()
def sample(
    denoise: Callable,
    scheduler,
    conds: torch.Tensor,
    weights,
    noise: torch.Tensor,
    steps: int,
    init: torch.Tensor | None = None,
    strength: float = 1.0,
    masks: torch.Tensor | None = None,
    region: torch.Tensor | None = None,
    centred: bool = False,
    bf16: bool = False,
    batch: int = 64,
    progress: bool = False,
) -> torch.Tensor:
    """Draw images under composed guidance.

    Args:
        denoise: ``(x, t, e) -> x0``: the generator's prediction of the clean image (or latents;
            an all-zero ``e`` is the unconditional one, as trained with classifier-free dropout).
            ``e`` is whatever the generator is conditioned on: the toy's embedding, or Stable
            unCLIP's class labels (the noised embedding and its noise level's embedding).
        scheduler: a diffusers ``DDIMScheduler`` (``prediction_type="sample"``).
        conds: (K, N, D) embeddings, one per term and item.
        weights: K guidance weights (negative: guide away).
        noise: (N, C, H, W) starting noise, on the generator's device.
        steps: DDIM steps.
        init: optional (N, C, H, W) images in [-1, 1] (or latents) to start from, noised to ``strength``
            (1: pure noise, the image is not used; smaller keeps more of it).
        strength: see ``init``.
        masks: optional spatial weights of the terms, from :func:`spatial` (K, N or 1, 1, H, W).
        region: optional (N or 1, 1, H, W) in [0, 1], with ``init``: drawn inside, kept outside
            (the result is ``init`` exactly where the region is 0).
        centred: with ``masks``, predict each term on a view rolled so that its mask's centre
            sits at the picture's centre (:func:`centring_shifts`; the module's docstring).
        bf16: run the network under bfloat16 autocast.
        batch: items per network pass (each pass holds (K + 1) * batch images; centred: (2 K + 1) * batch).
        progress: a progress bar over the steps.
    Returns:
        (N, C, H, W) float images in [-1, 1] (or latents), on the CPU.
    """
    from tqdm.auto import tqdm

    K, N = conds.shape[:2]
    if len(weights) != K:
        raise ValueError(f"{K} conditions but {len(weights)} weights")
    if region is not None and init is None:
        raise ValueError("region needs init_images (what to keep outside it)")
    if centred and masks is None:
        raise ValueError("centred terms need masks (each term's view is centred on its mask)")
    dev = noise.device
    w = torch.as_tensor(weights, dtype=torch.float32, device=dev).view(K, 1, 1, 1, 1)
    plain = K == 1 and float(weights[0]) == 1.0 and masks is None  # x0 = x0_1: no unconditional pass
    out = []
    for s in range(0, N, batch):
        x = noise[s : s + batch]
        B = x.shape[0]
        cs = conds[:, s : s + batch].float().to(dev)  # (K, B, D)
        x0_init = None if init is None else init[s : s + batch]
        mk, rg = _rows(masks, s, batch, 1), _rows(region, s, batch, 0)
        if centred:  # (K * B,) shifts, term-major as the passes are
            dy, dx = (d.reshape(-1) for d in centring_shifts(mk[:, :, 0].expand(K, B, *x.shape[-2:])))
        scheduler.set_timesteps(steps)
        timesteps = scheduler.timesteps
        if x0_init is not None and strength < 1.0:  # SDEdit: start part-way, from the noised input
            k = min(int(round(steps * (1 - strength))), steps - 1)
            timesteps = timesteps[k:]
            x = scheduler.add_noise(x0_init, x, timesteps[:1].repeat(B))
        e = cs[0] if plain else torch.cat([torch.zeros(B, cs.shape[-1], device=dev), cs.reshape(K * B, -1)])
        if centred:  # unconditional, every term on its view, the unconditional on each term's view
            e = torch.cat([e, torch.zeros(K * B, cs.shape[-1], device=dev)])
        for t in tqdm(timesteps, desc="generate", disable=not progress, leave=False):
            if centred:
                views = roll_each(x.repeat(K, 1, 1, 1), dy, dx)
                xx = torch.cat([x, views, views])
            else:
                xx = x if plain else x.repeat(K + 1, 1, 1, 1)  # one pass: unconditional + every term
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                pred = denoise(xx, t.repeat(xx.shape[0]).to(dev), e).float()
            if plain:
                x0 = pred
            elif centred:
                back = [roll_each(p, -dy, -dx).view(K, B, *pred.shape[1:]) for p in pred[B:].chunk(2)]
                x0 = pred[:B] + (w * (back[0] - back[1]) * mk).sum(0)
            else:
                pu, pc = pred[:B], pred[B:].view(K, B, *pred.shape[1:])
                terms = w * (pc - pu)
                if mk is not None:
                    terms = terms * mk
                x0 = pu + terms.sum(0)
            if rg is not None:  # blended diffusion: outside the region, the input
                x0 = rg * x0 + (1 - rg) * x0_init
            x = scheduler.step(x0, t, x).prev_sample
        if rg is not None and float(scheduler.final_alpha_cumprod) < 1.0:
            x = rg * x + (1 - rg) * x0_init  # the last step stopped short of t = 0: outside, the input
        out.append(x.cpu())
    return torch.cat(out)
