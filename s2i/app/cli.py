"""The ``s2i`` console script (also ``python -m s2i``): sound -> images from the command line.

    s2i generate dog.wav -n 4 -o out/               # audio -> 4 images + a grid
    s2i mix dog.wav water.flac --gain 0 -6          # several sounds (dB gains) -> one image
    s2i edit beach.png tractor.wav -o out/          # image + audio -> edited image
    s2i video clip.mp4 tractor.wav -o edited.mp4    # video + audio -> video
    s2i thumbnails podcast.mp3 -o out/              # long audio -> thumbnails (claims 18-21)

Every subcommand takes ``--profile`` (toy/smoke/full), ``--model-dir`` and ``--run-dir``,
defaulting to the current pipeline's trained models (``params.yaml``: ``base.profile``,
``pretrain.model_dir``, ``base.run_dir``, ``audio.window_s``, ``sampling.steps``,
``sampling.guidance``; with a ``--profile`` other than params.yaml's, those of
``profiles/<profile>.yaml``), ``--config`` (a YAML file of settings merged over those),
``--audio-encoder`` (a published Sound2Vision / Sound2Scene checkpoint used instead of the run's
trained audio encoder), ``--seed`` and ``-o/--out``.

Errors: every input is checked before the models load. A file that cannot be used is reported
on one line of stderr, ``s2i COMMAND: error: FILE: reason``. ``generate`` and ``thumbnails``
take many files: a bad one is reported and skipped, the others are processed, a summary line
says how many succeeded and failed, and the exit status is 1 if any failed. Outputs are written
atomically, so every file written is complete. Relative paths given on the command line are
taken from the working directory; the defaults from ``params.yaml`` from the repository root.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
from pathlib import Path

from s2i.app.inputs import (
    Batch,
    CLIError,
    _as_batch,
    _expected_errors,
    _one_line,
    _prefixes,
    _scale,
    _write_images,
    check_audio,
    check_model_options,
    check_video,
    load_model,
    pipeline_defaults,
    read_image,
)


# ----------------------------------------------------------------------------- subcommands
def cmd_generate(args) -> int:
    batch = Batch(args.command, args.audio)
    paths = batch.check(check_audio)
    if not paths:
        return batch.finish()
    s2i = load_model(args)
    out = Path(args.out)
    from tqdm.auto import tqdm

    from s2i.models.audio_encoder import SR

    def one(p: Path, prefix: str) -> None:
        audio = s2i.load_audio(p)
        images = s2i.generate(
            audio,
            sr=SR,
            n=args.n,
            seed=args.seed,
            guidance=args.guidance,
            steps=args.steps,
            candidates=args.candidates,
            progress=not args.quiet,
            height=None if args.size is None else args.size[0],
            width=None if args.size is None else args.size[1],
        )
        written = _write_images(images, out, prefix, _scale(args, images.shape[1]))
        print(f"{p}: {len(images)} images -> {written[0].parent}/{prefix}_*.png", flush=True)

    for p, prefix in tqdm(list(zip(paths, _prefixes(paths))), desc="files", disable=args.quiet or len(paths) < 2):
        batch.run(p, lambda p=p, prefix=prefix: one(p, prefix))
    return batch.finish()


def cmd_mix(args) -> int:
    paths = [check_audio(p) for p in args.audio]
    gains = args.gain or [0.0] * len(paths)
    if len(gains) != len(paths):
        raise CLIError(f"{len(paths)} audio files but {len(gains)} --gain values (give one per file, or none)")
    s2i = load_model(args)
    from s2i.models.audio_encoder import SR

    sounds = [s2i.load_audio(p) for p in paths]
    images = _as_batch(
        s2i.generate_mix(sounds, gains, n=args.n, seed=args.seed, sr=SR, steps=args.steps, size=args.size)
    )
    out = Path(args.out)
    _write_images(images, out, "mix", _scale(args, images.shape[1]))
    desc = ", ".join(f"{p.name} {g:+g} dB" for p, g in zip(paths, gains))
    print(f"mix of {desc}: {len(images)} images -> {out}/mix_*.png")
    return 0


def cmd_edit(args) -> int:
    image = read_image(args.image)
    ap = check_audio(args.audio)
    s2i = load_model(args)
    from s2i.method.edit import edit_image
    from s2i.models.audio_encoder import SR

    audio = s2i.load_audio(ap)
    images = _as_batch(
        edit_image(
            s2i,
            image,
            audio,
            sr=SR,
            gain_db=args.gain_db,
            seed=args.seed,
            n=args.n,
            steps=args.steps,
            candidates=args.candidates,
        )
    )
    out = Path(args.out)
    prefix = f"{Path(args.image).stem}_edited"
    _write_images(images, out, prefix, _scale(args, images.shape[1]))
    print(f"{args.image} + {ap}: {len(images)} edited images -> {out}/{prefix}_*.png")
    return 0


def cmd_video(args) -> int:
    vp = check_video(args.video)
    ap = check_audio(args.audio)
    out = Path(args.out or f"{vp.stem}_s2i.mp4")
    if out.suffix.lower() != ".mp4":
        raise CLIError(f"{out}: the output video must be an .mp4 file")
    s2i = load_model(args)
    from s2i.method.video_edit import edit_video

    edit_video(
        s2i,
        str(vp),
        str(ap),
        str(out),
        seed=args.seed,
        steps=args.steps,
        keep_audio=args.audio_track == "video",
        candidates=args.candidates,
    )
    print(f"{vp} + {ap} -> {out}")
    return 0


def cmd_thumbnails(args) -> int:
    from s2i.method.long_audio import _check_window
    from s2i.method.thumbnails import make_thumbnails

    _check_window(args.window, args.overlap)  # ValueError before the models load
    batch = Batch(args.command, args.audio)
    paths = batch.check(check_audio)
    if not paths:
        return batch.finish()
    s2i = load_model(args)

    def one(p: Path, prefix: str) -> None:
        out = Path(args.out) / prefix
        res = make_thumbnails(
            s2i,
            p,
            window_s=args.window,
            overlap_s=args.overlap,
            k=args.k,
            k_max=args.k_max,
            seed=args.seed,
            batch=args.batch,
            representative=args.representative,
            min_silhouette=args.min_silhouette,
            min_spread=args.min_spread,
            guidance=args.guidance,
            steps=args.steps,
            progress=not args.quiet,
            final=args.final,
            candidates=args.candidates,
        )
        res.save(out, scale=args.scale)
        how = res.clustering.method + (f": {res.clustering.reason}" if res.clustering.reason else "")
        print(
            f"{p}: {len(res.starts)} windows, {res.k} clusters ({how}); final = cluster {res.final} "
            f"({res.final_rule.split(':')[0]}) "
            f"-> {out}/final.png, contact_sheet.png, slideshow.gif, thumbnails.json",
            flush=True,
        )

    for p, prefix in zip(paths, _prefixes(paths)):
        batch.run(p, lambda p=p, prefix=prefix: one(p, prefix))
    return batch.finish()


# ----------------------------------------------------------------------------- the parser
SIZE_HELP = (
    "width x height of the pictures, e.g. 768x512 (full profile: multiples of 8; default: the "
    "generator's square; the toy generator draws 32x32 only)"
)


def picture_size(text: str) -> tuple[int, int]:
    """``--size WxH`` -> (height, width); argparse reports a malformed value."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels, e.g. 768x512, got {text!r}")
    return int(parts[1]), int(parts[0])


def build_parser(defaults: dict | None = None) -> argparse.ArgumentParser:
    d = defaults or pipeline_defaults()
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("models and output")
    g.add_argument(
        "--profile",
        choices=["toy", "smoke", "full"],
        default=d["profile"],
        help="model size (default: params.yaml's base.profile, %(default)s)",
    )
    g.add_argument(
        "--model-dir",
        default=None,
        help=f"pretrained backbones folder (default: params.yaml's pretrain.model_dir, {d['model_dir']})",
    )
    g.add_argument(
        "--run-dir",
        default=None,
        help=f"pipeline run folder holding alignment/audio_encoder (default: base.run_dir, {d['run_dir']})",
    )
    g.add_argument(
        "--encoder-window",
        type=float,
        default=None,
        metavar="S",
        help=f"the audio encoder's window in seconds (default: audio.window_s, {d['window_s']}; "
        "with --audio-encoder, the published encoder's 10 s)",
    )
    g.add_argument(
        "--audio-encoder",
        default=None,
        metavar="PATH",
        help="an audio encoder used instead of the run's trained one: a published checkpoint (Sound2Vision's "
        "sound2vision_env.pth, 1024-d: --profile full) or a folder trained by `python -m s2i.real align` "
        "(<out_dir>/alignment/audio_encoder); no trained run is needed then",
    )
    g.add_argument(
        "--audio-encoder-kind",
        choices=["sound2vision", "sound2scene"],
        default="sound2vision",
        help="which published network --audio-encoder holds (default %(default)s)",
    )
    g.add_argument(
        "--no-prior",
        action="store_true",
        help="draw the sound's embedding itself, not the run's embedding prior's samples of it (the baseline)",
    )
    g.add_argument(
        "--config",
        default=None,
        metavar="YAML",
        help="settings deep-merged over the profile's (params.yaml's keys), e.g. a 'full:' section "
        "naming local OpenCLIP / Stable unCLIP files; its relative paths are from the repository root",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the generator's noise (default %(default)s)")
    g.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance of generate and thumbnails (default: the profile's sampling.guidance, "
        "else the generator's; mix, edit and video weigh their terms themselves)",
    )
    g.add_argument(
        "--steps",
        type=int,
        default=None,
        help="sampling steps (default: the profile's sampling.steps, else the generator's)",
    )
    g.add_argument(
        "--scale",
        type=int,
        default=None,
        help="upscale written images by this factor, nearest neighbour (default: to >= 128 px)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bars")

    ap = argparse.ArgumentParser(
        prog="s2i",
        description="Sound to image by audio-to-visual latent alignment.",
        epilog="Run 's2i COMMAND --help' for a command's options.",
    )
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    p = sub.add_parser(
        "generate",
        parents=[common],
        formatter_class=fmt,
        help="audio -> images",
        description="Generate images of what is heard in each audio file (claims 6, 7, 17): "
        "<out>/<name>_NN.png and <out>/<name>_grid.png.",
    )
    p.add_argument(
        "audio",
        nargs="+",
        help="audio files (any format FFmpeg reads: wav, flac, mp3, ogg, opus, m4a, or a video's audio track)",
    )
    p.add_argument("-n", "--n", type=int, default=4, help="images per file")
    p.add_argument(
        "--candidates",
        type=int,
        default=1,
        metavar="K",
        help="draw K pictures for each image and keep the one the image encoder puts nearest to the "
        "sound's embedding (K times the drawing time)",
    )
    p.add_argument("--size", type=picture_size, default=None, metavar="WxH", help=SIZE_HELP)
    p.add_argument("-o", "--out", default="s2i_out", help="output folder")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "mix",
        parents=[common],
        formatter_class=fmt,
        help="several sounds -> one image",
        description="Mix several sounds, each at its gain in dB, and generate images of the mix "
        "(claims 13-14): <out>/mix_NN.png and <out>/mix_grid.png.",
    )
    p.add_argument("audio", nargs="+", help="audio files")
    p.add_argument(
        "--gain",
        type=float,
        nargs="+",
        action="extend",
        metavar="DB",
        help="gain in dB of each file, in order, negative ones included: --gain 0 -6 "
        "(or repeated: --gain 0 --gain -6); default 0 dB each",
    )
    p.add_argument("-n", "--n", type=int, default=1, help="images")
    p.add_argument("--size", type=picture_size, default=None, metavar="WxH", help=SIZE_HELP)
    p.add_argument("-o", "--out", default="s2i_out", help="output folder")
    p.set_defaults(func=cmd_mix)

    p = sub.add_parser(
        "edit",
        parents=[common],
        formatter_class=fmt,
        help="image + audio -> edited image",
        description="Put what is heard into an image (claims 9-12): <out>/<image>_edited_NN.png.",
    )
    p.add_argument("image", help="image file (png, jpg, ...)")
    p.add_argument("audio", help="audio file")
    p.add_argument("--gain-db", type=float, default=0.0, help="gain of the sound in dB (louder: bigger), e.g. -6")
    p.add_argument("-n", "--n", type=int, default=1, help="images")
    p.add_argument(
        "--candidates",
        type=int,
        default=1,
        metavar="K",
        help="draw K edits for each image and keep the one whose change, as the image encoder sees "
        "it, points most along what the sound adds (K times the drawing time)",
    )
    p.add_argument("-o", "--out", default="s2i_out", help="output folder")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser(
        "video",
        parents=[common],
        formatter_class=fmt,
        help="video + audio -> video",
        description="Put what is heard into every frame of a video (claims 15-16): an H.264 + AAC "
        "MP4 with the input's frame rate, frame count, width x height and audio track; the sound's "
        "loudness drives the edit frame by frame.",
    )
    p.add_argument("video", help="video file")
    p.add_argument("audio", help="audio file")
    p.add_argument("-o", "--out", default=None, help="output .mp4 (default: <video>_s2i.mp4)")
    p.add_argument(
        "--audio-track",
        choices=["video", "sound"],
        default="video",
        help="the output's audio: the video's own track (the sound if it has none), or the sound",
    )
    p.add_argument(
        "--candidates",
        type=int,
        default=1,
        metavar="K",
        help="edit the whole video K times and keep the edit whose frames' changes point most along "
        "what the sound adds (K times the drawing time)",
    )
    p.set_defaults(func=cmd_video)

    p = sub.add_parser(
        "thumbnails",
        parents=[common],
        formatter_class=fmt,
        help="long audio -> thumbnails",
        description="Thumbnails of a long sound (claims 18-21): windows of T s overlapping by N s "
        "are embedded and clustered (k-means); one thumbnail per cluster, in order of "
        "first appearance; the final one is from the source heard longest, "
        "clusters that hold the same source counted together (--final). Writes "
        "<out>/<name>/: contact_sheet.png, slideshow.gif, final.png, thumb_NN.png, "
        "thumbnails.json (clusters, sizes, time ranges). Files are streamed: memory "
        "does not grow with their length.",
    )
    p.add_argument("audio", nargs="+", help="audio files")
    p.add_argument("--window", type=float, default=2.0, metavar="T", help="window length in seconds")
    p.add_argument("--overlap", type=float, default=1.0, metavar="N", help="overlap of windows in seconds")
    p.add_argument("--k", type=int, default=None, help="number of clusters (default: chosen by silhouette)")
    p.add_argument("--k-max", type=int, default=8, help="largest k tried when choosing")
    p.add_argument(
        "--representative",
        choices=["nearest", "centroid"],
        default="nearest",
        help="a cluster's embedding: its member nearest the centroid, or the centroid",
    )
    p.add_argument("--min-silhouette", type=float, default=0.25, help="below it: one cluster")
    p.add_argument(
        "--min-spread",
        type=float,
        default=0.05,
        help="relative spread of the windows below which the sound is one cluster",
    )
    p.add_argument(
        "--final",
        choices=["sound", "largest"],
        default="sound",
        help="the final thumbnail: 'sound', the central cluster of the source heard longest "
        "(clusters grouped by their mean sounds); 'largest', simply the largest cluster",
    )
    p.add_argument(
        "--candidates",
        type=int,
        default=1,
        metavar="K",
        help="draw K pictures for each thumbnail and keep the one the image encoder puts nearest to "
        "its cluster's embedding (K times the drawing time)",
    )
    p.add_argument("--batch", type=int, default=32, help="windows embedded at a time")
    p.add_argument("-o", "--out", default="s2i_out", help="output folder")
    p.set_defaults(func=cmd_thumbnails)
    return ap


#: glibc malloc settings (bytes): freed blocks up to 32 MiB stay in the heap instead of being
#: unmapped, and the heap's top is not given back below 256 MiB, so torch's activations of a few
#: MiB are reused instead of page-faulted in on every call. ``scripts/stage.sh`` gives the
#: pipeline's stages the same values through the environment (``docs/benchmarks.md``, section 4).
MALLOC_MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD = 32 << 20, 256 << 20


def keep_freed_memory() -> bool:
    """Apply :data:`MALLOC_MMAP_THRESHOLD` and :data:`MALLOC_TRIM_THRESHOLD` to this process
    (``mallopt``), unless the environment sets glibc's malloc already. The same floats, less
    time: the 1-hour thumbnails about 15 % faster, drawing about 10 %. Returns whether they
    were applied (False off glibc)."""
    if any(k.startswith("MALLOC_") for k in os.environ) or "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD)) and bool(
        mallopt(m_trim_threshold, MALLOC_TRIM_THRESHOLD)
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``s2i`` console script; returns the exit status."""
    keep_freed_memory()
    try:
        defaults = pipeline_defaults()
    except CLIError as e:
        print(f"s2i: error: {_one_line(e)}", file=sys.stderr)
        return 1
    args = build_parser(defaults).parse_args(argv)
    args.defaults = defaults
    try:
        for name in ("n", "k", "k_max", "batch", "steps", "scale", "candidates"):
            v = vars(args).get(name)
            if v is not None and v < 1:
                raise CLIError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
        check_model_options(args)  # before any input is read or model loaded
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"s2i {args.command}: interrupted", file=sys.stderr)
        return 130
    except _expected_errors() as e:
        print(f"s2i {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
