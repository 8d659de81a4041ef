"""Pair extraction (S200) into shards that later stages memory-map, resumable and shared by processes.

**Layout** of an extraction folder::

    index.json                 # written last: the shards, the clips skipped and why, the settings
    shard-00000/z_img.npy      # (n, D) frame embeddings, un-normalised (what Stable unCLIP takes)
    shard-00000/audio.npy      # (m, S) int16 audio windows at 16 kHz, each stored once per shard
    shard-00000/rows.json      # one row per pair: clip_id, frame, time, split, label, source, audio
    shard-00001/...

A shard holds the pairs of ``shard_clips`` consecutive clips of the plan, so its content does not
depend on how many processes ran or where a run was stopped. A shard folder appears at once
(written as ``shard-K.partial``, then renamed), so a killed run leaves only whole shards and the
rerun starts at the first missing one; a shard written with other settings (plan, model, window)
is recomputed. Peak memory is one shard plus the decoders' prefetch, whatever the corpus size.

**Processes.** With ``accelerate launch`` (or any ``torch.distributed`` launcher) process ``p`` of
``P`` writes shards ``p, p + P, ...`` and the main process writes ``index.json`` once all exist.
Frames and audio are decoded in ``DataLoader`` workers (one clip per item); the image encoder
runs in the main process in batches.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from s2i.media import SR, MediaError
from s2i.real.corpus import Clip
from s2i.real.frames import read_clip
from s2i.utils import read_json, write_json

_DTYPES = {"float16": torch.float16, "float32": torch.float32}  # numpy stores no bfloat16

#: clip_id -> [(frame index on the fps grid, source), ...]; sources: "selected", "random", "candidate"...
Plan = dict[str, list[tuple[int, str]]]


@dataclass
class ExtractCfg:
    fps: float = 10.0  # the sampling grid frame indices refer to
    window_s: float = 10.0  # audio window per frame (s), see s2i.real.frames
    image_size: int = 224  # frames are decoded to the encoder's input side
    shard_clips: int = 256
    batch: int = 64  # frames per image-encoder batch
    workers: int = 2  # DataLoader decoding workers (0: decode in the main process)
    dtype: str = "float16"  # storage type of z_img
    model: str = ""  # the image encoder's name, part of a shard's fingerprint


def _fingerprint(cfg: ExtractCfg, clips: Sequence[Clip], plan: Plan) -> str:
    payload = json.dumps([asdict(cfg) | {"workers": 0, "batch": 0}, [(c.clip_id, plan[c.clip_id]) for c in clips]])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class _ClipFrames(torch.utils.data.Dataset):
    """Decodes one clip per item (in a DataLoader worker): frames and audio windows of its plan."""

    def __init__(self, root: Path, clips: Sequence[Clip], plan: Plan, cfg: ExtractCfg) -> None:
        self.root, self.clips, self.plan, self.cfg = root, list(clips), plan, cfg

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        c = self.clips[i]
        frames = sorted({f for f, _ in self.plan[c.clip_id]})
        try:
            s = read_clip(
                self.root / c.path,
                np.array(frames) / self.cfg.fps,
                self.cfg.fps,
                self.cfg.window_s,
                self.cfg.image_size,
            )
        except MediaError as e:
            return dict(i=i, error=str(e))
        return dict(i=i, frames=s.frames, windows=s.windows, index=frames)


def identity(x):
    """The DataLoader collate function of items that are already what the consumer takes."""
    return x


def _write_shard(out: Path, name: str, z: torch.Tensor, audio: np.ndarray, rows: list[dict], meta: dict) -> None:
    tmp = out / f"{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "z_img.npy", z.numpy())
    np.save(tmp / "audio.npy", audio)
    write_json(tmp / "rows.json", dict(meta, rows=rows))
    shutil.rmtree(out / name, ignore_errors=True)
    os.replace(tmp, out / name)


def _shard_ok(folder: Path, fingerprint: str) -> bool:
    try:
        return read_json(folder / "rows.json")["fingerprint"] == fingerprint
    except (OSError, ValueError, KeyError):
        return False


def extract_pairs(
    root: str | os.PathLike,
    clips: Sequence[Clip],
    plan: Plan,
    encode: Callable[[np.ndarray], torch.Tensor],
    out_dir: str | os.PathLike,
    cfg: ExtractCfg,
    *,
    process_index: int = 0,
    num_processes: int = 1,
    progress: bool = True,
) -> dict | None:
    """Decode the planned frames and audio windows of ``clips`` (under ``root``), embed the
    frames with ``encode`` (uint8 ``(n, S, S, 3)`` -> ``(n, D)``) and write the shards of this
    process (module docstring). Returns the index on the main process once every shard exists
    (``None`` elsewhere; the caller synchronises processes before reading it)."""
    out, root = Path(out_dir), Path(root)
    out.mkdir(parents=True, exist_ok=True)
    clips = [c for c in clips if plan.get(c.clip_id)]
    shards = [clips[i : i + cfg.shard_clips] for i in range(0, len(clips), cfg.shard_clips)]
    prints = [_fingerprint(cfg, s, plan) for s in shards]
    mine = [k for k in range(len(shards)) if k % num_processes == process_index]
    todo = [k for k in mine if not _shard_ok(out / f"shard-{k:05d}", prints[k])]
    work = [c for k in todo for c in shards[k]]
    loader = torch.utils.data.DataLoader(
        _ClipFrames(root, work, plan, cfg),
        batch_size=None,
        num_workers=cfg.workers if work else 0,
        collate_fn=identity,
        prefetch_factor=4 if cfg.workers and work else None,
    )
    items = iter(loader)
    bar = _progress(len(work), progress, process_index)
    for k in todo:
        rows, frames, audio, skipped = [], [], [], []
        for c in shards[k]:
            item = next(items)
            bar.update(1)
            if "error" in item:
                skipped.append(dict(clip_id=c.clip_id, path=c.path, reason=item["error"]))
                continue
            pos = {f: j for j, f in enumerate(item["index"])}
            seen: dict[bytes, int] = {}
            for f, source in plan[c.clip_id]:
                j = pos[f]
                w = (np.clip(item["windows"][j], -1, 1) * 32767).round().astype(np.int16)
                a = seen.setdefault(w.tobytes(), len(audio))
                if a == len(audio):
                    audio.append(w)
                rows.append(
                    dict(
                        clip_id=c.clip_id,
                        frame=int(f),
                        time=f / cfg.fps,
                        split=c.split,
                        label=c.label,
                        source=source,
                        audio=a,
                    )
                )
                frames.append(item["frames"][j])
        z = (
            torch.cat([encode(np.stack(frames[i : i + cfg.batch])) for i in range(0, len(frames), cfg.batch)])
            if frames
            else torch.zeros(0, 0)
        )
        S = int(round(cfg.window_s * SR))
        audio_arr = np.stack(audio) if audio else np.zeros((0, S), np.int16)
        meta = dict(fingerprint=prints[k], skipped=skipped, n_clips=len(shards[k]))
        _write_shard(out, f"shard-{k:05d}", z.to(_DTYPES[cfg.dtype]), audio_arr, rows, meta)
    bar.close()
    if process_index != 0:
        return None
    return write_index(out, len(shards), cfg, prints)


def write_index(out: Path, n_shards: int, cfg: ExtractCfg, prints: Sequence[str] | None = None) -> dict | None:
    """``index.json`` over the shards, once all of them exist (else ``None``: other processes are
    still writing theirs)."""
    names = [f"shard-{k:05d}" for k in range(n_shards)]
    if not all((out / n / "rows.json").exists() for n in names):
        return None
    if prints is not None and not all(_shard_ok(out / n, p) for n, p in zip(names, prints)):
        return None
    metas = [read_json(out / n / "rows.json") for n in names]
    index = dict(
        settings=asdict(cfg),
        shards=[dict(name=n, n_pairs=len(m["rows"]), n_clips=m["n_clips"]) for n, m in zip(names, metas)],
        n_pairs=sum(len(m["rows"]) for m in metas),
        skipped=[s for m in metas for s in m["skipped"]],
    )
    for stale in sorted(out.glob("shard-*")):  # shards of an earlier, larger plan
        if stale.name not in names:
            shutil.rmtree(stale, ignore_errors=True)
    write_json(out / "index.json", index)
    return index


def _progress(total: int, enabled: bool, process_index: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"extract[{process_index}]", unit="clip", disable=not enabled or total == 0)


class Pairs:
    """All pairs of an extraction folder, memory-mapped: ``rows`` (list of dicts), ``z(i)`` and
    ``windows(i)`` for an index array ``i`` (float32 tensors), without loading the corpus.
    The rows themselves are held in memory (about 1 kB each: a million pairs take about a GB;
    hence the bootstrap selection's ``candidate_stride``)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        index = read_json(self.folder / "index.json")
        self.settings, self.skipped = index["settings"], index["skipped"]
        self._z, self._audio, self.rows, where = [], [], [], []
        for k, s in enumerate(index["shards"]):
            d = self.folder / s["name"]
            self._z.append(np.load(d / "z_img.npy", mmap_mode="r"))
            self._audio.append(np.load(d / "audio.npy", mmap_mode="r"))
            for j, r in enumerate(read_json(d / "rows.json")["rows"]):
                self.rows.append(r)
                where.append((k, j, r["audio"]))
        self._where = np.array(where, np.int64).reshape(-1, 3)

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, split: str, source: str | None = None) -> np.ndarray:
        """Indices of the pairs of a split (and source)."""
        return np.array(
            [i for i, r in enumerate(self.rows) if r["split"] == split and (source is None or r["source"] == source)],
            np.int64,
        )

    def z(self, idx: np.ndarray) -> torch.Tensor:
        """(len(idx), D) float32 image embeddings."""
        w = self._where[idx]
        return torch.from_numpy(_gather(self._z, w[:, 0], w[:, 1]).astype(np.float32))

    def windows(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), S) float32 audio windows."""
        w = self._where[idx]
        return _gather(self._audio, w[:, 0], w[:, 2]).astype(np.float32) / 32767.0


def _gather(arrays: list[np.ndarray], shard: np.ndarray, row: np.ndarray) -> np.ndarray:
    """``arrays[shard[i]][row[i]]`` for every i, one fancy-indexed read per shard involved."""
    out = np.empty((len(shard), *arrays[0].shape[1:]), arrays[0].dtype)
    for k in np.unique(shard):
        at = shard == k
        out[at] = arrays[k][row[at]]
    return out
