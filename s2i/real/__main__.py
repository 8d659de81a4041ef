"""``python -m s2i.real STAGE``: the real-video stages of the ``full`` profile (:mod:`s2i.real.pipeline`).

Examples::

    python -m s2i.real all --profile fullsmoke                 # tiny models + generated videos, CPU
    python -m s2i.real all --profile fullsmoke --videos ~/clips  # the same tiny models on your videos
    python -m s2i.real all                                     # params.yaml (make profile PROFILE=full)
    accelerate launch -m s2i.real extract                      # shards over every GPU
    accelerate launch -m s2i.real align --set real.alignment.batch=512
"""

from __future__ import annotations

import argparse
import sys

import yaml

from s2i.paths import compose_profile, load_params
from s2i.real.pipeline import STAGES, prepare_fullsmoke


def _set(params: dict, assignment: str) -> None:
    key, sep, value = assignment.partition("=")
    if not sep:
        raise SystemExit(f"--set {assignment!r}: expected KEY=VALUE, e.g. real.alignment.batch=512")
    node = params
    *path, leaf = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
    node[leaf] = yaml.safe_load(value)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m s2i.real", description=__doc__.split("\n\n")[0])
    ap.add_argument("stage", choices=[*STAGES, "all"])
    ap.add_argument("--profile", help="a profile of profiles/ (default: params.yaml as it is)")
    ap.add_argument("--params", default="params.yaml", help="a params file (default: params.yaml)")
    ap.add_argument(
        "--videos", help="fullsmoke: run the tiny models on this folder of videos instead of generated ones"
    )
    ap.add_argument("--out", help="the output folder (real.out_dir)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one param (YAML value)")
    a = ap.parse_args(argv)
    p = compose_profile(a.profile) if a.profile else load_params(a.params)
    if "real" not in p:
        raise SystemExit("the active params have no `real` section: use --profile full or fullsmoke")
    for s in a.set:
        _set(p, s)
    if a.out:
        p["real"]["out_dir"] = a.out
    if p["real"].get("tiny"):
        from s2i.real.pipeline import process_state

        with process_state().main_process_first():
            p = prepare_fullsmoke(p, a.videos)
    elif a.videos:
        p["real"]["video_dir"] = a.videos
    for stage in STAGES if a.stage == "all" else [a.stage]:
        print(f"s2i.real: {stage}", file=sys.stderr, flush=True)
        STAGES[stage](p)


if __name__ == "__main__":
    main()
