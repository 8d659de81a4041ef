"""A corpus of real videos: which files are usable, their facts, labels and split.

:func:`scan_corpus` walks a folder (recursively; any container PyAV opens), probes every file
without decoding it and keeps a :class:`Clip` for each usable one. Every other file is listed
with its reason (no audio stream, no video stream, unreadable, too short, broken metadata) and
the scan goes on; files that PyAV can open but not decode are found later, by the stage that
decodes them, and listed there the same way.

Labels and split come from an optional manifest:

* **VGGSound** (``vggsound.csv``): no header, rows ``youtube_id,start_seconds,label,split`` with
  split ``train`` or ``test``. Files are matched by YouTube id and start second, whatever the file
  name's convention: ``<id>_<start:06d>.mp4`` (the common download scripts), ``<id>_<start>``,
  ``<id>_<start_ms>_<end_ms>`` (Sound2Scene's names) or ``<id>.mp4`` when the id is unique.
* **A plain CSV with a header** containing ``file`` (path relative to the folder, extension
  optional) and any of ``label`` and ``split`` -- e.g. VEGAS or VAS lists written out.
* **Class folders** (``label_from: folder``, VEGAS/VAS as distributed): the label is the name of
  the file's parent folder.

Without a split from the manifest, a deterministic hash of the clip id assigns
``train``/``val``/``test`` by ``split_fractions``; a manifest that only has ``train`` and ``test``
(VGGSound) gets its ``val`` carved out of ``train`` by the same hash, so model selection never
sees the test split.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from s2i.media import MediaError, probe
from s2i.utils import read_json, write_json

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".flv", ".3gp", ".ts")

_YT = r"([A-Za-z0-9_-]{11})"
_NAME_FORMS = (  # YouTube id + start second from a file stem
    re.compile(rf"^{_YT}_(\d+)_(\d+)$"),  # Sound2Scene: <id>_<start_ms>_<end_ms>
    re.compile(rf"^{_YT}_(\d+)$"),  # <id>_<start:06d> or <id>_<start>
)


@dataclass
class Clip:
    """One usable video of the corpus (times in seconds, facts from the container)."""

    clip_id: str
    path: str  # relative to the corpus folder
    split: str
    label: str | None
    duration: float
    fps: float
    width: int
    height: int
    sample_rate: int
    channels: int


@dataclass
class Corpus:
    """The usable clips and the unusable files (``{"path", "reason"}``), in file order."""

    root: Path
    clips: list[Clip]
    skipped: list[dict]

    def split(self, name: str) -> list[Clip]:
        return [c for c in self.clips if c.split == name]

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, dict(root=str(self.root), clips=[asdict(c) for c in self.clips], skipped=self.skipped))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Corpus:
        d = read_json(path)
        return cls(Path(d["root"]), [Clip(**c) for c in d["clips"]], d["skipped"])


def hash_unit(key: str, seed: int = 0) -> float:
    """A number in [0, 1) fixed by ``key`` and ``seed`` (the same on every machine)."""
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / float(16**12)


def hash_split(key: str, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> str:
    u = hash_unit(key, seed)
    return "train" if u < fractions[0] else ("val" if u < fractions[0] + fractions[1] else "test")


def youtube_key(stem: str) -> tuple[str, int] | None:
    """``(youtube_id, start_second)`` from a VGGSound-style or Sound2Scene-style file stem."""
    for form in _NAME_FORMS:
        m = form.match(stem)
        if m:
            start = int(m.group(2))
            return m.group(1), (start // 1000 if len(m.groups()) == 3 else start)
    return None


def read_manifest(path: str | os.PathLike) -> dict:
    """A manifest -> ``{"by_key": {(id, start): (label, split)}, "by_file": {stem: (label, split)}}``."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r and any(x.strip() for x in r)]
    if not rows:
        raise ValueError(f"{path}: empty manifest")
    head = [h.strip().lower() for h in rows[0]]
    if "file" in head:  # a plain CSV with a header
        col = {h: i for i, h in enumerate(head)}
        by_file = {}
        for r in rows[1:]:
            cell = {h: (r[i].strip() or None) if i < len(r) else None for h, i in col.items()}
            by_file[str(Path(cell["file"] or "").with_suffix(""))] = (cell.get("label"), cell.get("split"))
        return dict(by_key={}, by_file=by_file)
    by_key = {}
    for n, r in enumerate(rows, 1):
        if len(r) < 4 or not r[1].strip().isdigit():
            raise ValueError(
                f"{path}: line {n} is not a VGGSound row 'youtube_id,start_seconds,label,split' "
                f"(nor does the first line name a 'file' column): {','.join(r)!r}"
            )
        by_key[(r[0].strip(), int(r[1]))] = (r[2].strip(), r[3].strip())
    return dict(by_key=by_key, by_file={})


def _lookup(manifest: dict, rel: Path, ids: dict[str, list]) -> tuple[str | None, str | None] | None:
    stem = str(rel.with_suffix(""))
    if stem in manifest["by_file"]:
        return manifest["by_file"][stem]
    if rel.stem in manifest["by_file"]:
        return manifest["by_file"][rel.stem]
    key = youtube_key(rel.stem)
    if key is not None and key in manifest["by_key"]:
        return manifest["by_key"][key]
    hits = ids.get(rel.stem, [])  # <id>.mp4 and the id has exactly one manifest row
    return hits[0] if len(hits) == 1 else None


def _check(info: dict, min_seconds: float) -> tuple[str | None, float]:
    """(reason the file is unusable or None, duration)."""
    v, a = info["video"], info["audio"]
    if v is None:
        return "no video stream", 0.0
    if a is None:
        return "no audio stream", 0.0
    if not a["sample_rate"] or not a["channels"]:
        return "broken metadata: audio stream without sample rate or channels", 0.0
    if not v["width"] or not v["height"]:
        return "broken metadata: video stream without a frame size", 0.0
    streams = [d for d in (v["duration"], a["duration"]) if d]
    duration = min(streams) if streams else info["duration"]  # the shorter stream, else the container's
    if not duration:
        return "broken metadata: no duration in the container or its streams", 0.0
    if duration < min_seconds:
        return f"too short: {duration:.2f} s < {min_seconds} s", duration
    return None, duration


def scan_corpus(
    folder: str | os.PathLike,
    manifest: str | os.PathLike | None = None,
    *,
    label_from: str = "manifest",
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    min_seconds: float = 1.0,
    seed: int = 0,
    exts: Sequence[str] = VIDEO_EXTS,
) -> Corpus:
    """Probe every video file under ``folder`` and return the :class:`Corpus`.

    ``manifest``: a VGGSound CSV or a CSV with a ``file`` column (module docstring); when given,
    files it does not list are skipped (``"not in the manifest"``), as are manifest rows whose
    split is neither train, val nor test. ``label_from="folder"`` takes labels from parent folder
    names instead. Clip ids are the relative paths without extension (``/`` -> ``__``), made
    unique with a hash suffix when two files share a stem."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: the video folder does not exist")
    man = read_manifest(manifest) if manifest else None
    ids: dict[str, list] = {}
    if man:
        for (yid, _), v in man["by_key"].items():
            ids.setdefault(yid, []).append(v)
    clips, skipped, seen = [], [], set()
    for p in sorted(q for q in root.rglob("*") if q.is_file() and q.suffix.lower() in exts):
        rel = p.relative_to(root)
        label, split = (rel.parent.name or None, None) if label_from == "folder" else (None, None)
        if man is not None:
            hit = _lookup(man, rel, ids)
            if hit is None:
                skipped.append(dict(path=str(rel), reason="not in the manifest"))
                continue
            label = hit[0] if label_from != "folder" else label
            split = hit[1]
            if split not in (None, "train", "val", "test"):
                skipped.append(dict(path=str(rel), reason=f"split {split!r} in the manifest is not train/val/test"))
                continue
        try:
            info = probe(p)
        except MediaError as e:
            skipped.append(dict(path=str(rel), reason=str(e).removeprefix(f"{p}: ")))
            continue
        reason, duration = _check(info, min_seconds)
        if reason:
            skipped.append(dict(path=str(rel), reason=reason))
            continue
        cid = str(rel.with_suffix("")).replace(os.sep, "__")
        if cid in seen:
            cid = f"{cid}-{hashlib.sha256(str(rel).encode()).hexdigest()[:8]}"
        seen.add(cid)
        if split is None:
            split = hash_split(cid, split_fractions, seed)
        elif split == "train" and hash_unit(cid, seed) < split_fractions[1]:
            split = "val"  # a train/test manifest: validation carved out of train
        v, a = info["video"], info["audio"]
        fps = v["fps"] or 0.0
        facts = (float(duration), float(fps), v["width"], v["height"], a["sample_rate"], a["channels"])
        clips.append(Clip(cid, str(rel), split, label, *facts))
    return Corpus(root, clips, skipped)
