"""The method: frame selection (S100, claim 2), pair extraction (S200), alignment data.

Works on any list of videos: the toy world's clips (with ground truth, so selection can be
measured) or a folder of real videos (``full`` profile; no ground truth needed).

Frame selection is a bootstrap from a first alignment round, using only the videos: an
audio encoder is trained with the patent's InfoNCE on *every* (frame, audio window) pair of
the training videos -- noisy pairs, since a third or more of the frames disagree with their
sound -- and each frame is then scored by how much better its own sound explains its picture
than sounds in general do (:func:`correspondence_scores`): the log-ratio that the InfoNCE critic
estimates, ``log p(frame | its sound) / p(frame)``. Matched pairs dominate the data, so the
model learns the true correspondence and mismatched frames score low.
The top-k frames of each clip above a score threshold are kept.

Why a ratio and not the distance itself, ``-||Z^A(audio_t) - Z^V(frame_t)||``: a sound does
not say everything a picture shows (the toy world's objects take any colour of a palette; a
real dog's sound does not say its breed or the lawn). The embedding predicted from a sound is
then an average over what the sound leaves open, and the frames nearest it are the plainest
ones -- an empty scene lies closer to "some ring, colour unknown" than any coloured ring does.
The ratio divides that out: an empty scene is as near every sound's prediction as its own, a
frame showing the heard object is nearer its own sound's than most.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from s2i.media import SR, MediaError, read_video
from s2i.toyworld import world
from s2i.toyworld.clips import load_index
from s2i.utils import atomic_path, read_json, write_json

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


@dataclass
class ClipRef:
    """One video of the corpus: id, file, split and (toy world only) its ground truth path."""

    clip_id: str
    path: Path
    split: str
    truth: Path | None = None


def world_clips(world_dir: str | os.PathLike) -> list[ClipRef]:
    """The toy world's clips, from its ``index.json``."""
    world_dir = Path(world_dir)
    idx = load_index(world_dir)
    return [ClipRef(r["clip_id"], world_dir / r["video"], r["split"], world_dir / r["truth"]) for r in idx["clips"]]


def folder_clips(
    folder: str | os.PathLike, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> list[ClipRef]:
    """Real videos in a folder (recursively), split by a hash of the relative path."""
    folder = Path(folder)
    out, seen = [], set()
    for p in sorted(q for q in folder.rglob("*") if q.suffix.lower() in VIDEO_EXTS):
        rel = str(p.relative_to(folder))
        h = int(hashlib.sha256(f"{seed}:{rel}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        split = "train" if h < fractions[0] else ("val" if h < fractions[0] + fractions[1] else "test")
        cid = rel.rsplit(".", 1)[0].replace("/", "__")
        if cid in seen:  # x.mp4 / x.mov, a/b.mp4 / a__b.mp4: keep ids unique
            cid = f"{cid}-{hashlib.sha256(rel.encode()).hexdigest()[:8]}"
        seen.add(cid)
        out.append(ClipRef(cid, p, split))
    return out


def frame_windows(audio: np.ndarray | None, times: np.ndarray, fps: float, sr: int, window_s: float) -> np.ndarray:
    """(T, S) audio windows of ``window_s`` seconds centred on each frame's interval
    ``[t, t + 1/fps)``, zero-padded at the clip's ends."""
    S = int(round(window_s * sr))
    a = np.zeros(0, np.float32) if audio is None else np.asarray(audio, np.float32)
    starts = np.round((np.asarray(times) + 0.5 / fps) * sr).astype(int) - S // 2
    out = np.zeros((len(starts), S), np.float32)
    for i, s in enumerate(starts):  # copy the part of each window that overlaps the audio
        lo, hi = max(s, 0), min(s + S, len(a))
        if hi > lo:
            out[i, lo - s : hi - s] = a[lo:hi]
    return out


@dataclass
class DecodedClip:
    ref: ClipRef
    frames: np.ndarray  # (T, IMG, IMG, 3) uint8
    times: np.ndarray  # (T,) s
    windows: np.ndarray  # (T, S) float32
    match: np.ndarray | None  # (T,) bool ground truth (toy world only)


def decode_clips(
    refs: Iterable[ClipRef],
    window_s: float,
    size: int = world.IMG,
    sr: int = SR,
    frames_subset: dict[str, Sequence[int]] | None = None,
) -> tuple[list[DecodedClip], list[dict]]:
    """Decode clips with PyAV (first video and first audio stream, audio resampled to ``sr``,
    frames centre-cropped and resized to ``size``). A missing, corrupt or audio-less file is
    skipped and listed with its reason, never fatal. ``frames_subset`` keeps only the given
    frame indices of each clip."""
    out, skipped = [], []
    for ref in refs:
        try:
            v = read_video(ref.path, sr=sr, size=size, need_audio=True)
        except MediaError as e:
            skipped.append(dict(clip_id=ref.clip_id, path=str(ref.path), reason=str(e)))
            continue
        wins = frame_windows(v.audio, v.times, v.fps, sr, window_s)
        match = None
        if ref.truth is not None and Path(ref.truth).exists():
            t = read_json(ref.truth)
            match = np.array([f["match"] for f in t["frames"]])[: len(v.frames)]
        keep = np.arange(len(v.frames))
        if frames_subset is not None:
            keep = np.asarray(frames_subset.get(ref.clip_id, []), int)
        out.append(DecodedClip(ref, v.frames[keep], v.times[keep], wins[keep], None if match is None else match[keep]))
    return out, skipped


def correspondence_scores(
    z_aud: torch.Tensor,
    z_img: torch.Tensor,
    reference: torch.Tensor,
    temperature: float,
    normalize: bool = False,
    batch: int = 4096,
) -> np.ndarray:
    """Each frame's audio-visual correspondence score: how much better its own sound explains
    its picture than a reference sample of sounds does, in the critic's own units,

        ``score_i = -d(a_i, v_i) / T - log mean_j exp(-d(r_j, v_i) / T)``

    with ``d`` the L2 distance of the alignment loss (between L2-normalised embeddings when
    ``normalize``), ``T`` its temperature, ``a_i = Z^A`` of the frame's own audio window,
    ``v_i = Z^V`` of the frame and ``r_j`` the reference sounds' ``Z^A`` (a random sample of
    the training frames' sounds; a few thousand are plenty). This is the pointwise mutual
    information that an InfoNCE critic estimates (Oord et al. 2018; Poole et al. 2019): about 0
    for a frame that every sound explains equally well, positive when its own sound explains it
    better. Computed in chunks of ``batch`` frames.

    Args:
        z_aud, z_img: (N, D) audio and image embeddings of the N frames.
        reference: (M, D) audio embeddings of the reference sounds.
        temperature, normalize: those the first alignment round was trained with.
    Returns:
        (N,) float32 scores."""
    import torch.nn.functional as F

    if z_aud.shape != z_img.shape or reference.ndim != 2 or reference.shape[1] != z_img.shape[1]:
        raise ValueError(
            f"z_aud {tuple(z_aud.shape)}, z_img {tuple(z_img.shape)} and reference {tuple(reference.shape)} "
            "must be (N, D), (N, D) and (M, D)"
        )
    a, v, r = z_aud.float(), z_img.float(), reference.float()
    if normalize:
        a, v, r = F.normalize(a, dim=-1), F.normalize(v, dim=-1), F.normalize(r, dim=-1)
    out = []
    for s in range(0, len(v), batch):
        own = -(a[s : s + batch] - v[s : s + batch]).norm(dim=1) / temperature
        others = -torch.cdist(v[s : s + batch], r) / temperature  # (B, M)
        out.append(own - (torch.logsumexp(others, dim=1) - np.log(len(r))))
    return torch.cat(out).numpy().astype(np.float32)


def reference_sounds(z_aud: torch.Tensor, is_train: np.ndarray, n: int = 4096, seed: int = 0) -> torch.Tensor:
    """A seeded random sample of at most ``n`` training frames' audio embeddings: the reference
    of :func:`correspondence_scores`."""
    idx = np.flatnonzero(is_train)
    rng = np.random.default_rng(seed)
    return z_aud[np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False))]


def select_frames(scores: np.ndarray, k: int, threshold: float) -> np.ndarray:
    """Indices of the top-``k`` frames of a clip whose score is at least ``threshold``
    (in time order); if none passes, the single best frame."""
    order = np.argsort(-scores, kind="stable")
    keep = [i for i in order[:k] if scores[i] >= threshold]
    return np.sort(np.array(keep if keep else order[:1], int))


def selection_metrics(clips: list[DecodedClip], selected: dict[str, np.ndarray], k: int, seed: int) -> dict:
    """Precision of the selected frames against the ground truth (share whose visible object
    is the heard source), beside k random frames per clip and the centre frame."""
    rng = np.random.default_rng(seed)
    sel, rnd, ctr, all_ = [], [], [], []
    for c in clips:
        if c.match is None:
            continue
        T = len(c.match)
        sel += list(c.match[selected[c.ref.clip_id]])
        rnd += list(c.match[rng.choice(T, size=min(k, T), replace=False)])
        ctr.append(c.match[T // 2])
        all_ += list(c.match)
    if not sel:
        return {}
    return dict(
        selection_precision=float(np.mean(sel)),
        random_frame_precision=float(np.mean(rnd)),
        center_frame_precision=float(np.mean(ctr)),
        match_share_all_frames=float(np.mean(all_)),
        n_selected=len(sel),
        n_clips_measured=len(ctr),
    )


def save_pairs(out_dir: str | os.PathLike, rows: list[dict], z_img: torch.Tensor, mels: torch.Tensor) -> None:
    """The on-disk pair format (``pairs/``):

    * ``index.json``: one row per pair -- ``clip_id``, ``frame``, ``time`` (s), ``split``,
      ``source`` (``selected``: chosen by frame selection; ``random``: random frames, for the
      ablation; ``test_gt``: ground-truth matched frames of test clips, for measurement only).
    * ``z_img.npy``: (N, D) float32 image embeddings Z^V of the frames (frozen encoder).
    * ``mel.npy``: (N, 1, 64, T) float16 log-mel of the audio window around each frame.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, arr in (("z_img.npy", z_img.numpy().astype(np.float32)), ("mel.npy", mels.numpy().astype(np.float16))):
        with atomic_path(out_dir / name) as tmp:
            np.save(tmp, arr)
    write_json(out_dir / "index.json", dict(n=len(rows), rows=rows))


def load_pairs(out_dir: str | os.PathLike) -> tuple[list[dict], torch.Tensor, torch.Tensor]:
    out_dir = Path(out_dir)
    idx = read_json(out_dir / "index.json")
    return (
        idx["rows"],
        torch.from_numpy(np.load(out_dir / "z_img.npy")),
        torch.from_numpy(np.load(out_dir / "mel.npy").astype(np.float32)),
    )


def subset(rows: list[dict], z: torch.Tensor, m: torch.Tensor, split: str, source: str):
    """Rows, Z^V and mels of one split and source."""
    ii = [i for i, r in enumerate(rows) if r["split"] == split and r["source"] == source]
    return [rows[i] for i in ii], z[ii], m[ii]
