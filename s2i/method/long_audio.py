"""Window embeddings of a long sound (claims 18-19, patent fig. 15 S600-S700).

The audio is cut into windows of ``T = window_s`` seconds that overlap by ``N = overlap_s``
seconds (hop ``T - N``), on the window grid of :func:`s2i.media.iter_audio_windows` (a tail at
least half a window long is kept, zero-padded). A file is *streamed*: windows are decoded and
embedded batch by batch and only the ``(n_windows, D)`` embeddings and start times are kept.
A window of ``T`` seconds is embedded exactly as :meth:`Sound2Image.embed_audio` embeds a clip of
that length: the mean of the embeddings of its encoder-sized sub-windows at half an encoder
window hop (a ``T`` shorter than the encoder's window is zero-padded on both sides)."""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

import numpy as np
import torch

from s2i.models.audio_encoder import SR


# ============================================================================= 1-2. windows -> embeddings
@dataclass
class WindowEmbeddings:
    """Embeddings of a sound's windows: ``z`` (N, D) float32, ``starts`` (N,) seconds; where
    asked for (``quiet_db``), ``objects`` (M, D) float32, the object sounds of the windows
    ``object_windows`` (M,) (:func:`object_sound_samples`)."""

    z: np.ndarray
    starts: np.ndarray
    window_s: float
    overlap_s: float
    duration: float  # seconds of audio (decoded length; the container's for files)
    source: str | None = None
    objects: np.ndarray | None = None
    object_windows: np.ndarray | None = None
    quiet_db: float | None = None


def _check_window(window_s: float, overlap_s: float) -> None:
    if not (window_s > 0 and math.isfinite(window_s)):
        raise ValueError(f"window_s must be positive, got {window_s}")
    if not (0 <= overlap_s < window_s):
        raise ValueError(f"overlap_s must be in [0, window_s={window_s}), got {overlap_s}")


def _sub_windows(windows: np.ndarray, enc_window_s: float) -> np.ndarray:
    """(B, W) windows -> (B, n_sub, S) encoder-sized sub-windows, the grid of
    :func:`s2i.method.generate.windows_of` (hop S/2; a window of at most S samples is centred and
    zero-padded into one sub-window)."""
    B, W = windows.shape
    S = int(round(enc_window_s * SR))
    if W <= S:
        pad = S - W
        return np.pad(windows, ((0, 0), (pad // 2, pad - pad // 2)))[:, None]
    hop = int(round(enc_window_s / 2 * SR))
    starts = np.arange(0, W - S + 1, hop)
    view = np.lib.stride_tricks.sliding_window_view(windows, S, axis=1)  # (B, W-S+1, S), no copy
    return view[:, starts]


def embed_long_windows(s2i, windows: np.ndarray, hop: int | None = None) -> np.ndarray:
    """(B, W) 16 kHz windows of any length -> (B, D) float32: for each window, the mean of its
    encoder-window embeddings (what :meth:`Sound2Image.embed_audio` gives for that clip).

    ``hop``: the windows are consecutive, ``hop`` samples apart (a multiple of the sub-window
    hop, as with windows of 2 s every 1 s): the sub-windows they share are then embedded once,
    on the grid of the audio the batch covers (7 sub-windows per window become 4; with the
    trained encoder their log-mels also share STFT frames, :meth:`Sound2Image.embed_window_grid`)."""
    windows = np.asarray(windows, np.float32)
    B, W = windows.shape
    S, h = int(round(s2i.window_s * SR)), int(round(s2i.window_s / 2 * SR))
    if hop is not None and B > 1 and S < W and 0 < hop <= W and hop % h == 0:
        span = np.concatenate([windows[0], *(w[W - hop :] for w in windows[1:])])  # the audio they cover
        z = _as_array(s2i.embed_window_grid(span, h))  # (n_grid, D): every sub-window once
        n_sub = (W - S) // h + 1
        idx = np.arange(B)[:, None] * (hop // h) + np.arange(n_sub)[None]  # (B, n_sub) grid rows
        return z[idx].mean(axis=1)
    sub = _sub_windows(windows, s2i.window_s)  # (B, n_sub, S)
    n_sub = sub.shape[1]
    z = _as_array(s2i.embed_windows(np.ascontiguousarray(sub.reshape(B * n_sub, S))))  # (B * n_sub, D)
    return z.reshape(B, n_sub, -1).mean(axis=1)


OBJECT_SAMPLES_MAX = 512  # windows of one sound whose object sound is sampled, evenly spread


def object_sound_samples(s2i, windows: np.ndarray, quiet_db: float) -> np.ndarray:
    """(B, W) 16 kHz windows -> (B, D) float32 *object sounds*: the embedding of each window's
    central encoder window minus that of the same audio turned down by ``quiet_db``. At -20 dB
    the object is no longer heard but the place's ambience still is, so the difference keeps
    the object and cancels the place (the device of editing and mixing). One encoder window,
    not the whole window, keeps the cost at two encoder calls per sampled window."""
    sub = _sub_windows(np.asarray(windows, np.float32), s2i.window_s)
    centre = np.ascontiguousarray(sub[:, sub.shape[1] // 2])  # (B, S)
    q = np.float32(10 ** (quiet_db / 20))
    return _as_array(s2i.embed_windows(centre)) - _as_array(s2i.embed_windows(centre * q))


def _as_array(z) -> np.ndarray:
    return np.asarray(z.detach().cpu().numpy() if torch.is_tensor(z) else z, np.float32)


def _array_batches(
    audio: np.ndarray, window_s: float, overlap_s: float, batch: int, min_fill: float
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The batches :func:`s2i.media.iter_audio_windows` would yield for an in-memory signal."""
    from s2i.media import audio_window_starts

    starts = audio_window_starts(len(audio), SR, window_s, overlap_s=overlap_s, min_fill=min_fill)
    W = int(round(window_s * SR))
    for b in range(0, len(starts), batch):
        s = starts[b : b + batch]
        out = np.zeros((len(s), W), np.float32)
        for i, a in enumerate(s):
            seg = audio[a : a + W]
            out[i, : len(seg)] = seg
        yield out, s / SR


def read_ahead(items: Iterator, depth: int = 1) -> Iterator:
    """Yield ``items`` in order while a thread produces up to ``depth`` more: a file's windows
    are decoded (PyAV releases the GIL) while the encoder embeds the previous batch, instead of
    in turn. An error in the producer is raised here, after the items before it. Closing this
    iterator early stops the thread."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
        except BaseException as e:  # noqa: BLE001 -- handed to the consumer, raised there
            put(("error", e))
            return
        put(("end", None))

    thread = threading.Thread(target=produce, name="s2i-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def window_embeddings(
    s2i,
    audio: str | os.PathLike | np.ndarray,
    sr: int | None = None,
    window_s: float = 2.0,
    overlap_s: float = 1.0,
    batch: int = 32,
    min_fill: float = 0.5,
    progress: bool = False,
    quiet_db: float | None = None,
    max_objects: int = OBJECT_SAMPLES_MAX,
) -> WindowEmbeddings:
    """Cut ``audio`` (a file path, streamed; or an array with its ``sr``) into windows of
    ``window_s`` overlapping by ``overlap_s`` and embed them, ``batch`` windows at a time.
    With ``quiet_db`` (e.g. -20), in the same pass, the object sounds of every window up to
    ``max_objects`` windows, and beyond that of every ``ceil(n / max_objects)``-th
    (:func:`object_sound_samples`; an hour of 2-s windows every second: every 8th; about
    7 % more encoder work there; a file of unknown length: every window).

    Raises :class:`s2i.media.MediaError` for an unreadable file and ValueError for bad
    window arguments or an array without ``sr``."""
    from tqdm.auto import tqdm

    _check_window(window_s, overlap_s)
    source = None
    if isinstance(audio, (str, os.PathLike)):
        from s2i.media import audio_window_starts, iter_audio_windows, probe

        source = str(audio)
        it = read_ahead(iter_audio_windows(audio, SR, window_s, batch=batch, overlap_s=overlap_s, min_fill=min_fill))
        info = probe(audio)
        stated = (info["audio"] or {}).get("duration") or info["duration"]
        total = (
            len(audio_window_starts(int(stated * SR), SR, window_s, overlap_s=overlap_s, min_fill=min_fill))
            if stated
            else None
        )
    else:
        if sr is None:
            raise ValueError("an audio array needs its sample rate (sr=...)")
        from s2i.media import audio_window_starts

        a = s2i.load_audio(np.asarray(audio), sr)
        stated = len(a) / SR
        it = _array_batches(a, window_s, overlap_s, batch, min_fill)
        total = len(audio_window_starts(len(a), SR, window_s, overlap_s=overlap_s, min_fill=min_fill))
    zs, ss, objs, obj_idx = [], [], [], []
    n_done = 0  # windows embedded so far
    last = None
    stride = 1 if not total else max(1, math.ceil(total / max_objects))
    hop = int(round((window_s - overlap_s) * SR))
    with closing(it), tqdm(total=total, desc="embed windows", unit="win", disable=not progress) as bar:
        for w, s in it:
            consecutive = len(s) > 1 and np.allclose(np.diff(s) * SR, hop, atol=0.5)
            if quiet_db is not None:
                sel = np.flatnonzero((n_done + np.arange(len(s))) % stride == 0)
                if len(sel):
                    objs.append(object_sound_samples(s2i, w[sel], quiet_db))
                    obj_idx.append(n_done + sel)
            zs.append(embed_long_windows(s2i, w, hop if consecutive else None))  # (B, D)
            ss.append(s)
            n_done += len(s)
            last = w[-1].copy()
            bar.update(len(s))
    if not zs:
        if source is not None:
            from s2i.media import MediaError

            raise MediaError(f"{source}: no decodable audio (empty or corrupt audio stream)")
        raise ValueError("no audio to cut into windows (empty array)")
    z, starts = np.concatenate(zs), np.concatenate(ss)
    # The last window may run past the end of the audio, zero-padded: embed only its real part
    # (trailing exact zeros), as embed_audio would embed that shorter clip. Silence padding
    # would otherwise pull its embedding away from its neighbours (an outlier "cluster").
    nz = np.flatnonzero(last)
    end = float(starts[-1] + window_s)  # the audio reaches at least this far...
    if len(nz) and nz[-1] + 1 < len(last):
        z[-1] = embed_long_windows(s2i, last[None, : nz[-1] + 1])[0]
        end = float(starts[-1] + (nz[-1] + 1) / SR)  # ...or exactly this far
        duration = end
    else:  # a tail shorter than min_fill of a window may have been dropped: trust the stated length
        duration = max(end, float(stated or 0.0))
    return WindowEmbeddings(
        z=z,
        starts=starts,
        window_s=float(window_s),
        overlap_s=float(overlap_s),
        duration=duration,
        source=source,
        objects=np.concatenate(objs) if objs else None,
        object_windows=np.concatenate(obj_idx) if obj_idx else None,
        quiet_db=None if quiet_db is None else float(quiet_db),
    )
