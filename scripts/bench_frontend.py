#!/usr/bin/env python
"""Benchmark: the real path's audio front end (decode + features) against Sound2Scene's loader and
against a bare PyAV decode.

    .venv/bin/python scripts/bench_frontend.py [--clips 64] [--workers 1 2] [--repeats 2] [--profile]

It writes ``--clips`` 10-s clips into a temporary folder, twice: 16 kHz mono 16-bit WAV
(soundfile), and H.264 (64x64, 10 fps) + AAC 44.1 kHz stereo MP4 (PyAV). Each clip is a few tones
with vibrato, noise and a silent gap, different per clip. Then, clips/s:

**WAV** (reference: Sound2Scene's loader at the same worker count)

- ``sound2scene loader``: the lines of their ``a2s_dataloader.py`` rewritten here (not vendored):
  ``sf.read``, repeat 10x and cut to 160000, clip to [-1, 1], ``scipy.signal.spectrogram(nperseg=512,
  noverlap=353)``, ``log(S + 1e-7)``, standardise; one clip per item, DataLoader batch 32.
- ``s2i read_audio+sound2scene`` / ``+logmel``: the real path -- :func:`s2i.media.read_audio` per
  clip and :func:`s2i.real.features.audio_features` on the batch, both in the DataLoader worker
  (one item = one batch of ``--batch`` clips, ``batch_size=None``, as ``s2i.real.align`` loads).
- ``(sf.read+sound2scene)``: their decode with s2i's features -- the front end without s2i's decode.
- ``(read_audio only)``: s2i's decode alone.

**MP4** (reference: bare PyAV decode)

- ``bare PyAV decode``: the floor -- open, ``container.decode(audio=0)``, ``frame.to_ndarray()``
  per frame and one ``np.concatenate`` (44.1 kHz stereo as decoded: no resampling, no downmix).
- ``s2i read_audio+sound2scene`` / ``+logmel`` / ``(read_audio only)``: as for WAV.

**Features only** (main process, no decode, ``--clips`` windows of 10 s; the columns are torch
threads, not workers): ``audio_features`` for both kinds against their scipy lines one clip at a time.

**CPU ms per clip** (main process, one torch thread, ``time.process_time``: what a clip costs this
process, little changed by other processes on the machine, unlike the wall-clock rates above): each
decoder and front end alone, including the float64 ``published_spectrogram`` and ``log_mel``, and
the real path's totals against the references.

Every configuration has one untimed warm-up pass (file cache, worker start-up: DataLoaders use
persistent workers), then ``--repeats`` timed passes, configurations alternating within a repeat
so that load from other processes hits them alike; the median is reported. Targets: the real path
>= 2x Sound2Scene's loader; decode + features >= 0.5x the bare decode. ``--profile`` prints
cProfile's top functions of ``read_audio`` over the clips (where s2i's decode spends its time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import torch
from benchlib import cpu_model
from scipy import signal

from s2i.media import read_audio
from s2i.models.audio_encoder import log_mel
from s2i.models.published import published_spectrogram
from s2i.real.features import audio_features

SECONDS, SR, SR_MP4 = 10, 16000, 44100


# ----------------------------------------------------------------------------- clips
def sound(sr: int, seed: int, channels: int) -> np.ndarray:
    """(channels, 10 s) float32: two tones with vibrato, noise, a 1-s silent gap."""
    rng = np.random.default_rng(seed)
    t = np.arange(SECONDS * sr) / sr
    out = []
    for _ in range(channels):
        f = rng.uniform(80, 3000, 2)
        x = sum(0.2 * np.sin(2 * np.pi * fi * t + 3 * np.sin(2 * np.pi * 0.7 * t)) for fi in f)
        x = x + 0.03 * rng.standard_normal(len(t))
        g = rng.uniform(1, 8)
        x[(t > g) & (t < g + 1)] = 0.0
        out.append(x)
    return np.stack(out).astype(np.float32)


def write_mp4(path: Path, seed: int, size: int = 64, fps: int = 10) -> None:
    """10-s H.264 (ultrafast) + AAC 44.1 kHz stereo, packets interleaved as in real files."""
    audio, hop = sound(SR_MP4, seed, 2), 1024
    with av.open(str(path), "w", format="mp4") as c:
        vs = c.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "28", "threads": "1"})
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.codec_context.time_base = Fraction(1, fps)
        st = c.add_stream("aac", rate=SR_MP4, layout="stereo", options={"aac_coder": "fast"})
        done = 0
        for i in range(SECONDS * fps):
            img = np.full((size, size, 3), (seed * 37 + i * 5) % 256, np.uint8)
            img[:, (i * 3) % size] = 255
            fr = av.VideoFrame.from_ndarray(img, format="rgb24")
            fr.pts = i
            for pkt in vs.encode(fr):
                c.mux(pkt)
            while done < min((i + 1) * SR_MP4 // fps, audio.shape[1]):  # the audio of this frame
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, done : done + hop]), "fltp", "stereo")
                af.sample_rate, af.pts = SR_MP4, done
                done += hop
                for pkt in st.encode(af):
                    c.mux(pkt)
        for s in (vs, st):
            for pkt in s.encode():
                c.mux(pkt)


# ----------------------------------------------------------------------------- loaders
def their_item(path) -> np.ndarray:
    """Sound2Scene's a2s_dataloader.py, rewritten: one clip -> (257, 1004), float32 for the network."""
    samples, samplerate = sf.read(path)
    resamples = np.tile(samples, 10)[:160000]
    resamples[resamples > 1.0] = 1.0
    resamples[resamples < -1.0] = -1.0
    frequencies, times, spectrogram = signal.spectrogram(resamples, samplerate, nperseg=512, noverlap=353)
    spectrogram = np.log(spectrogram + 1e-7)
    mean = np.mean(spectrogram)
    std = np.std(spectrogram)
    return np.divide(spectrogram - mean, std + 1e-9).astype(np.float32)


def fit(x: np.ndarray, n: int = SECONDS * SR) -> np.ndarray:
    return x[:n] if len(x) >= n else np.tile(x, -(-n // len(x)))[:n]  # repeated if short, as theirs


def bare_decode(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([fr.to_ndarray() for fr in c.decode(audio=0)], axis=1)


def s2i_batch(paths, kind: str | None, decode=read_audio):
    windows = np.stack([fit(np.asarray(decode(p), np.float32)) for p in paths])
    return windows if kind is None else audio_features(windows, kind)


def sf_decode(path) -> np.ndarray:
    return sf.read(path, dtype="float32")[0]


class _Items(torch.utils.data.Dataset):
    def __init__(self, fn, items):
        self.fn, self.items = fn, items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.fn(self.items[i])


def _n(batch) -> int:
    return len(batch) if isinstance(batch, list | tuple) else batch.shape[0]


def loader_pass(paths, fn, workers: int, per_clip: bool, batch: int):
    """A pass function over ``paths`` through a persistent DataLoader: one clip per item (their
    way, collated into batches) or one batch of clips per item (s2i's way)."""
    if per_clip:
        ds, kw = _Items(fn, paths), dict(batch_size=batch)
    else:
        ds, kw = _Items(fn, [paths[i : i + batch] for i in range(0, len(paths), batch)]), dict(batch_size=None)
    ld = torch.utils.data.DataLoader(ds, num_workers=workers, persistent_workers=True, **kw)
    return lambda: sum(_n(b) for b in ld)


def measure(configs: dict, repeats: int, n: int, clock=time.perf_counter) -> dict:
    """Seconds per pass (median of ``repeats`` timed passes after one warm-up, configurations
    alternating) of each ``name -> pass function``; a pass returns how many clips it did."""
    secs = {k: [] for k in configs}
    for f in configs.values():
        f()
    for _ in range(repeats):
        for k, f in configs.items():
            t = clock()
            got = f()
            secs[k].append(clock() - t)
            assert got == n, (k, got, n)
    return {k: statistics.median(v) for k, v in secs.items()}


def table(title: str, rows: dict, ref: str, cols: list, col_name: str) -> None:
    print(f"\n{title}\n{'':36}" + "".join(f"{f'{col_name} {c}':>22}" for c in cols))
    print(f"{'':36}" + "".join(f"{'clips/s':>12}{'ratio':>10}" for _ in cols))
    for name in rows[cols[0]]:
        cells = "".join(f"{rows[c][name]:>12.1f}{rows[c][name] / rows[c][ref]:>9.2f}x" for c in cols)
        print(f"{name:36}{cells}")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="cProfile of read_audio on the WAV and MP4 clips")
    args = ap.parse_args()
    print(f"CPU: {cpu_model()} | os.cpu_count()={os.cpu_count()} | torch threads={torch.get_num_threads()}")
    print(f"torch {torch.__version__} | PyAV {av.__version__} | soundfile {sf.__version__} | load avg {loadavg()}")

    work = Path(tempfile.mkdtemp(prefix="s2i_bench_frontend_"))
    t = time.perf_counter()
    wavs, mp4s = [work / f"clip{i:03d}.wav" for i in range(args.clips)], []
    for i, p in enumerate(wavs):
        sf.write(p, sound(SR, i, 1)[0], SR, subtype="PCM_16")
        mp4s.append(p.with_suffix(".mp4"))
        write_mp4(mp4s[-1], i)
    mb = sum(p.stat().st_size for p in mp4s) / len(mp4s) / 2**20
    print(f"{args.clips} WAV + {args.clips} MP4 clips ({mb:.2f} MB each) written in {time.perf_counter() - t:.1f} s")
    n, B, R = args.clips, args.batch, args.repeats
    s2s, lm = "s2i read_audio+sound2scene", "s2i read_audio+logmel"
    theirs, bare = "sound2scene loader (sf+scipy)", "bare PyAV decode (44.1k stereo)"

    wav_rows, mp4_rows = {}, {}
    for w in args.workers:
        wav = {
            theirs: loader_pass(wavs, their_item, w, True, B),
            s2s: loader_pass(wavs, lambda b: s2i_batch(b, "sound2scene"), w, False, B),
            lm: loader_pass(wavs, lambda b: s2i_batch(b, "logmel"), w, False, B),
            "(sf.read+sound2scene)": loader_pass(wavs, lambda b: s2i_batch(b, "sound2scene", sf_decode), w, False, B),
            "(read_audio only)": loader_pass(wavs, lambda b: s2i_batch(b, None), w, False, B),
        }
        wav_rows[w] = {k: n / v for k, v in measure(wav, R, n).items()}
        mp4 = {
            bare: loader_pass(mp4s, lambda b: [bare_decode(p) for p in b], w, False, B),
            s2s: loader_pass(mp4s, lambda b: s2i_batch(b, "sound2scene"), w, False, B),
            lm: loader_pass(mp4s, lambda b: s2i_batch(b, "logmel"), w, False, B),
            "(read_audio only)": loader_pass(mp4s, lambda b: s2i_batch(b, None), w, False, B),
        }
        mp4_rows[w] = {k: n / v for k, v in measure(mp4, R, n).items()}
        print(f"  {w} worker(s) done (load avg {loadavg()})", flush=True)

    # CPU time of this process, one thread: what a clip costs, whatever else the machine runs
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x = np.stack([fit(sf_decode(p)) for p in wavs])
    each = lambda fn, items: lambda: sum(fn(i) is not None for i in items)
    cpu = measure(
        {
            "sf.read (WAV)": each(sf.read, wavs),
            "their spectrogram lines (scipy)": each(their_item_array, x),
            "their loader (sf.read + scipy)": each(their_item, wavs),
            "read_audio (WAV)": each(read_audio, wavs),
            "read_audio (MP4)": each(read_audio, mp4s),
            "bare PyAV decode (MP4)": each(bare_decode, mp4s),
            "audio_features sound2scene": lambda: len(audio_features(x, "sound2scene")),
            "audio_features logmel": lambda: len(audio_features(x, "logmel")),
            "published_spectrogram (float64)": lambda: len(published_spectrogram(x)),
            "log_mel": lambda: len(log_mel(x)),
        },
        R,
        n,
        time.process_time,
    )
    ms = {k: 1e3 * v / n for k, v in cpu.items()}
    feat = {}
    for th in sorted({1, threads}):
        torch.set_num_threads(th)
        feat[th] = measure(
            {
                "scipy one clip at a time (theirs)": each(their_item_array, x),
                "audio_features sound2scene": lambda: len(audio_features(x, "sound2scene")),
                "audio_features logmel": lambda: len(audio_features(x, "logmel")),
            },
            R,
            n,
        )
        feat[th] = {k: n / v for k, v in feat[th].items()}
    torch.set_num_threads(threads)

    cols = list(args.workers)
    table(
        f"WAV 16 kHz mono, {n} clips x 10 s, batch {B}: ratio vs Sound2Scene's loader",
        wav_rows,
        theirs,
        cols,
        "workers",
    )
    table(f"MP4 H.264 + AAC 44.1k stereo, {n} clips x 10 s: ratio vs bare decode", mp4_rows, bare, cols, "workers")
    table(
        f"Features only, main process, {n} windows x 10 s: ratio vs scipy",
        feat,
        "scipy one clip at a time (theirs)",
        sorted(feat),
        "threads",
    )
    print("\nCPU ms per 10-s clip, main process, one thread (process time: robust to other load)")
    for k, v in ms.items():
        print(f"  {k:36}{v:8.2f} ms")
    real_wav = ms["read_audio (WAV)"] + ms["audio_features sound2scene"]
    real_mp4 = ms["read_audio (MP4)"] + ms["audio_features sound2scene"]
    print(
        f"  => real path WAV (read_audio + sound2scene) {real_wav:.2f} ms: "
        f"{ms['their loader (sf.read + scipy)'] / real_wav:.2f}x their loader; with sf.read instead "
        f"{ms['their loader (sf.read + scipy)'] / (ms['sf.read (WAV)'] + ms['audio_features sound2scene']):.2f}x"
    )
    print(
        f"  => real path MP4 (read_audio + sound2scene) {real_mp4:.2f} ms: "
        f"{ms['bare PyAV decode (MP4)'] / real_mp4:.2f}x the bare decode"
    )
    print(
        f"\nmedian of {R} warm passes; load avg at the end {loadavg()}; targets: real path >= 2x Sound2Scene's "
        "loader, decode + features >= 0.5x bare decode"
    )
    for w in cols:
        r1, r2 = wav_rows[w][s2s] / wav_rows[w][theirs], mp4_rows[w][s2s] / mp4_rows[w][bare]
        print(
            f"  {w} worker(s): WAV {r1:.2f}x ({'met' if r1 >= 2 else 'NOT met'}), "
            f"MP4 {r2:.2f}x ({'met' if r2 >= 0.5 else 'NOT met'})"
        )

    if args.profile:
        import cProfile
        import pstats

        for paths in (wavs, mp4s):
            pr = cProfile.Profile()
            pr.enable()
            for p in paths:
                read_audio(p)
            pr.disable()
            print(f"\ncProfile of read_audio over {len(paths)} {paths[0].suffix} clips (tottime)")
            pstats.Stats(pr).sort_stats("tottime").print_stats(10)


def their_item_array(samples: np.ndarray) -> np.ndarray:
    """:func:`their_item` after ``sf.read`` (float64, as sf.read returns), on a decoded clip."""
    resamples = np.tile(samples.astype(np.float64), 10)[:160000]
    resamples[resamples > 1.0] = 1.0
    resamples[resamples < -1.0] = -1.0
    _, _, spectrogram = signal.spectrogram(resamples, SR, nperseg=512, noverlap=353)
    spectrogram = np.log(spectrogram + 1e-7)
    return np.divide(spectrogram - np.mean(spectrogram), np.std(spectrogram) + 1e-9)


if __name__ == "__main__":
    main()
