"""The field's evaluation protocol on the test split (Sound2Scene's README, "Evaluation").

For each of ``n`` test pairs (selected frames of test clips), the sound's embedding Z^A (the
trained audio encoder) is drawn by the profile's generator, and the image is compared with the
test frames through an **independent** CLIP (``real.evaluation.judge``; OpenCLIP ViT-B/32 by
default -- not the encoder the audio was aligned to, whose space the generator was conditioned on):

* **R@1/5/10**: the image retrieves its own clip's frame among the ``n`` test frames by cosine
  similarity in the judge's space (chance ``k / n``); **class R@1** where the corpus has labels:
  the top-1 frame has the clip's label.
* beside it, the **baseline**: a random other test frame in place of the generated image (what
  the protocol gives without any sound), and the **upper bound**: the image generated from the
  true frame's own image embedding Z^V (what a perfect audio encoder would give).
* **FID and IS** (torch-fidelity, Inception-v3) between the generated images and the test frames,
  when torch-fidelity and its Inception weights are on the machine; otherwise a one-line reason.
  With a few hundred images FID is biased upwards; compare runs of the same ``n`` only.

**Volume** (claim 8, :func:`volume_response`): the same test sounds at gains ``gains_db``. A sound's
level reaches the picture only through the audio encoder, then the embedding: s2i's log-mel front
end keeps absolute level (a louder sound moves Z^A, and the toy world's encoder learns its size
law from it). Sound2Scene's front end standardises each clip's log spectrogram, which would cancel
a gain, but its floor ``log(S + 1e-7)`` sits near the power of quiet bins, so level still moves its
features, less: -6 dB on a tone in noise moves them by about 0.2 (relative L2) against 0.8 for the
log-mel (tests/test_real_path.py); above 0 dBFS the waveform clips at +-1. The guidance scale is the
profile's, whatever the level (mixing derives per-source weights from *relative* levels,
:mod:`s2i.method.mix`). Measured per gain: how far Z^A moves (relative L2 from 0 dB), how far the
pictures move (the judge's cosine distance from the 0-dB pictures) and R@1 against the frames.

**Image + sound** (claims 9-12, :func:`edit_response`): a test frame edited with the sound of
another test clip (:func:`s2i.method.edit.compose_edit`, the whole picture, SDEdit strength as
the CLI's). How much of the input is **kept**: the judge's cosine similarity of the edit to the
input, and LPIPS (the ``lpips`` package, AlexNet) when its weights are on the machine. How much of
the sound is **reflected**: how much closer, in the judge's cosine similarity, the edit is to the
sound's own frame than the input was. Beside it, the baseline: the same edit with the sound of a
third clip (reflection toward the second clip's frame by chance), and the upper bound: the edit
driven by the second clip's true frame embedding instead of its sound.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from s2i.method.alignment import retrieval

KS = (1, 5, 10)


def image_retrieval(queries: torch.Tensor, frames: torch.Tensor, labels: list | None = None) -> dict:
    """R@k of query ``i`` retrieving frame ``i`` among all frames by cosine similarity (+ class R@1
    where every label is known): :func:`s2i.method.alignment.retrieval` on unit vectors, whose L2
    order is the cosine order."""
    q, f = F.normalize(queries.float(), dim=-1), F.normalize(frames.float(), dim=-1)
    known = labels is not None and all(lb is not None for lb in labels)
    return retrieval(q, f, np.asarray(labels) if known else None, KS)


def derangement(n: int, seed: int) -> np.ndarray:
    """A permutation with no fixed point (the baseline's "another test frame")."""
    rng = np.random.default_rng(seed)
    if n < 2:
        return np.arange(n)
    while True:
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            return p


def fid_is(generated: np.ndarray, real: np.ndarray) -> dict:
    """FID and IS by torch-fidelity, or ``{"skipped": reason}`` when it or its weights are missing
    (nothing is downloaded: ``HF_HUB_OFFLINE``-style, the Inception weights must be in torch's hub
    cache already)."""
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return dict(skipped="torch-fidelity is not installed (pip install torch-fidelity)")
    hub = os.path.join(torch.hub.get_dir(), "checkpoints")
    if not os.path.isdir(hub) or not any(f.startswith("weights-inception-2015-12-05") for f in os.listdir(hub)):
        return dict(skipped=f"torch-fidelity's Inception weights are not in {hub} (run it once on a machine online)")
    from torch_fidelity import calculate_metrics

    class _Images(torch.utils.data.Dataset):
        def __init__(self, x: np.ndarray) -> None:
            self.x = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)  # uint8 (N, 3, H, W)

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> torch.Tensor:
            return self.x[i]

    m = calculate_metrics(input1=_Images(generated), input2=_Images(real), fid=True, isc=True, verbose=False)
    return dict(fid=float(m["frechet_inception_distance"]), is_mean=float(m["inception_score_mean"]))


def evaluate(
    frames: np.ndarray,
    z_audio: torch.Tensor,
    z_image: torch.Tensor,
    generate: Callable[[torch.Tensor], np.ndarray],
    judge: Callable[[np.ndarray], torch.Tensor],
    labels: list | None = None,
    seed: int = 0,
    z_prior: torch.Tensor | None = None,
) -> tuple[dict, dict[str, np.ndarray]]:
    """The protocol on ``n`` test pairs: ``frames`` (n, H, W, 3) uint8, the sounds' ``z_audio`` and
    the frames' ``z_image`` (n, D); ``generate`` draws embeddings, ``judge`` embeds images. Returns
    the metrics ``{"sound": ..., "baseline_random_frame": ..., "upper_bound_true_embedding": ...,
    "fid_is": ...}`` and the images ``{"sound", "upper"}``. ``z_prior``: the embedding prior's
    samples of the sounds, drawn and measured the same way as ``"sound_prior"``."""
    j_frames = judge(frames)
    images = {"sound": generate(z_audio), "upper": generate(z_image)}
    other = derangement(len(frames), seed)
    metrics = {
        "sound": image_retrieval(judge(images["sound"]), j_frames, labels),
        "baseline_random_frame": image_retrieval(j_frames[other], j_frames, labels),
        "upper_bound_true_embedding": image_retrieval(judge(images["upper"]), j_frames, labels),
        "fid_is": fid_is(images["sound"], frames),
    }
    if z_prior is not None:
        metrics["sound_prior"] = image_retrieval(judge(generate(z_prior)), j_frames, labels)
    return metrics, images


def volume_response(
    windows: np.ndarray,
    frames: np.ndarray,
    embed: Callable[[np.ndarray], torch.Tensor],
    generate: Callable[[torch.Tensor], np.ndarray],
    judge: Callable[[np.ndarray], torch.Tensor],
    gains_db: tuple[float, ...] = (-12.0, -6.0, 0.0, 6.0, 12.0),
) -> list[dict]:
    """Per gain: ``z_shift`` (mean ``||Z^A(g) - Z^A(0)|| / ||Z^A(0)||``), ``image_shift`` (mean
    judge cosine distance between the pictures at ``g`` and at 0 dB, same seed) and ``r1`` of the
    pictures against ``frames``; ``windows`` (n, S) are the test sounds at their own level."""
    j_frames = judge(frames)
    z0 = embed(windows)
    j0 = F.normalize(judge(generate(z0)).float(), dim=-1)
    rows = []
    for g in gains_db:
        z = z0 if g == 0 else embed(np.clip(windows * 10 ** (g / 20), -1, 1).astype(np.float32))
        j = j0 if g == 0 else F.normalize(judge(generate(z)).float(), dim=-1)
        rows.append(
            dict(
                gain_db=float(g),
                z_shift=float(((z - z0).norm(dim=-1) / z0.norm(dim=-1).clamp_min(1e-12)).mean()),
                image_shift=float((1 - (j * j0).sum(-1)).mean()),
                r1=image_retrieval(j, j_frames)["r1"],
            )
        )
    return rows


def lpips_distance(a: np.ndarray, b: np.ndarray) -> float | str:
    """Mean LPIPS (AlexNet) between uint8 image sets, or the reason it cannot run here."""
    try:
        import lpips
    except ImportError:
        return "lpips is not installed"
    hub = os.path.join(torch.hub.get_dir(), "checkpoints")
    if not os.path.isdir(hub) or not any(f.startswith("alexnet-") for f in os.listdir(hub)):
        return f"LPIPS needs torchvision's AlexNet weights in {hub} (run it once on a machine online)"
    net = lpips.LPIPS(net="alex", verbose=False).eval()
    to = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    with torch.no_grad():
        return float(net(to(a), to(b)).mean())


def edit_response(
    inputs: np.ndarray,
    targets: np.ndarray,
    edits: dict[str, np.ndarray],
    judge: Callable[[np.ndarray], torch.Tensor],
) -> dict:
    """``inputs`` (n, H, W, 3) edited into ``edits[name]`` by sounds whose own frames are
    ``targets``; per edit kind: ``kept`` (cosine to the input), ``reflected`` (cosine gain toward the
    target over the input's), ``lpips`` to the input (or why not)."""
    norm = lambda x: F.normalize(judge(x).float(), dim=-1)  # noqa: E731
    j_in, j_tg = norm(inputs), norm(targets)
    before = (j_in * j_tg).sum(-1)
    out = {}
    for name, imgs in edits.items():
        j = norm(imgs)
        out[name] = dict(
            kept=float((j * j_in).sum(-1).mean()),
            reflected=float(((j * j_tg).sum(-1) - before).mean()),
            lpips=lpips_distance(imgs, inputs),
        )
    return out
