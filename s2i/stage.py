"""Run one pipeline stage: its notebook, executed by papermill with values from ``params.yaml``.

Every ``cmd`` of ``dvc.yaml`` is ``sh scripts/stage.sh STAGE``; that wrapper picks the project's
Python (``$S2I_PYTHON``, else ``.venv/bin/python``, else ``python3`` on the PATH, e.g. an activated
conda env) and runs ``python -m s2i.stage STAGE`` from the repository root, so a stage needs
nothing on the PATH but ``sh``::

    sh scripts/stage.sh world              # run notebooks/00_world.ipynb -> <run_dir>/notebooks/
    python -m s2i.stage --show world       # print the notebook parameters it would pass
    python -m s2i.stage --profile smoke    # write params.yaml = profile smoke (make profile)

:data:`STAGES` is the one table from ``params.yaml`` keys to notebook parameter names. Values
are passed as Python values (a YAML ``true`` arrives as ``True``, a quoted list as one string).
The executed notebook goes to ``<base.run_dir>/notebooks/<notebook>.ipynb``. ``dvc.yaml`` must
still list, for each stage, the ``params:`` it reads (tests/test_dvc.py checks it).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from .paths import load_params, repo_root, resolve, write_profile

_BASE = {"seed": "base.seed", "run_dir": "base.run_dir"}
_MODELS = {"profile": "base.profile", "model_dir": "pretrain.model_dir", "window_s": "audio.window_s"}
_DRAWS = {**_MODELS, "sample_steps": "sampling.steps", "sample_guidance": "sampling.guidance"}  # the stages that draw

#: stage -> (notebook in notebooks/, {notebook parameter: dotted params.yaml key})
STAGES: dict[str, tuple[str, dict[str, str]]] = {
    "world": ("00_world", {**_BASE, "n_clips": "world.n_clips", "p_match": "world.p_match"}),
    "pretrain": (
        "00_pretrain",
        {
            **_BASE,
            "model_dir": "pretrain.model_dir",
            **{
                k: f"pretrain.{k}"
                for k in (
                    "n_stills",
                    "n_heldout",
                    "n_recon",
                    "enc_model",
                    "enc_steps",
                    "enc_batch",
                    "enc_lr",
                    "enc_temperature",
                    "judge_steps",
                    "judge_batch",
                    "judge_width",
                    "gen_channels",
                    "gen_attn_levels",
                    "gen_tokens",
                    "gen_steps",
                    "gen_batch",
                    "gen_lr",
                    "gen_cfg_dropout",
                    "gen_max_noise_level",
                    "gen_ema_decay",
                    "gen_sample_steps",
                    "gen_guidance",
                    "gen_kind",
                    "gen_ae_steps",
                    "gen_ae_width",
                    "gen_ae_latent_noise",
                    "gen_latent_denoiser",
                    "gen_latent_width",
                    "gen_latent_depth",
                    "gen_bf16",
                )
            },
        },
    ),
    "frame_selection": (
        "01_frame_selection",
        {
            **_BASE,
            **_MODELS,
            "audio_width": "audio.width",
            "audio_depth": "audio.depth",
            "k": "frame_selection.k",
            "score_quantile": "frame_selection.score_quantile",
            "epochs": "frame_selection.epochs",
            "batch": "frame_selection.batch",
            "lr": "frame_selection.lr",
            "temperature": "frame_selection.temperature",
        },
    ),
    "extraction": ("02_extraction", {**_BASE, **_MODELS, "k": "frame_selection.k"}),
    "alignment": (
        "03_alignment",
        {
            **_BASE,
            "audio_width": "audio.width",
            "audio_depth": "audio.depth",
            **{
                k: f"alignment.{k}"
                for k in (
                    "loss",
                    "temperature",
                    "normalize",
                    "epochs",
                    "batch",
                    "lr",
                    "compare_losses",
                    "compare_epochs",
                )
            },
        },
    ),
    "prior": (
        "03_prior",
        {
            **_BASE,
            **{
                k: f"prior.{k}"
                for k in (
                    "width",
                    "depth",
                    "steps",
                    "batch",
                    "lr",
                    "p_uncond",
                    "cond_noise",
                    "guidance",
                    "sample_steps",
                )
            },
        },
    ),
    "generation": (
        "04_generation",
        {
            **_BASE,
            **_DRAWS,
            "n_per_class": "generation.n_per_class",
            "n_images": "generation.n_images",
            "candidates": "generation.candidates",
            "n_recon": "generation.n_recon",
        },
    ),
    "studies": (
        "05_studies",
        {
            **_BASE,
            **_DRAWS,
            **{
                k: f"studies.{k}"
                for k in (
                    "n_volume_per_class",
                    "gains_db",
                    "n_mix_pairs",
                    "n_mix_ratio_pairs",
                    "n_mix_images",
                    "ratios_db",
                    "mix_method",
                )
            },
        },
    ),
    "editing": (
        "06_editing",
        {
            **_BASE,
            **_DRAWS,
            **{
                k: f"editing.{k}"
                for k in (
                    "n_edits",
                    "edit_gains_db",
                    "n_videos",
                    "strength",
                    "w_image",
                    "w_sound",
                    "ambience_db",
                    "region",
                    "candidates",
                    "video_candidates",
                    "video_region",
                )
            },
        },
    ),
    "thumbnails": (
        "07_thumbnails",
        {
            **_BASE,
            **_DRAWS,
            "thumb_window_s": "thumbnails.window_s",
            "thumb_overlap_s": "thumbnails.overlap_s",
            **{
                k: f"thumbnails.{k}"
                for k in (
                    "k_max",
                    "min_silhouette",
                    "min_spread",
                    "n_programmes",
                    "programme_minutes_min",
                    "programme_minutes_max",
                    "candidates",
                )
            },
        },
    ),
}


def lookup(params: dict[str, Any], key: str) -> Any:
    """``params["a"]["b"]`` for ``key="a.b"``; a missing key names the key and params.yaml."""
    v: Any = params
    for part in key.split("."):
        if not isinstance(v, dict) or part not in v:
            raise KeyError(f"params.yaml has no {key!r}")
        v = v[part]
    return v


def stage_parameters(stage: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The notebook parameters of ``stage``, read from ``params`` (default: ``params.yaml``)."""
    if stage not in STAGES:
        raise SystemExit(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")
    params = load_params() if params is None else params
    return {name: lookup(params, key) for name, key in STAGES[stage][1].items()}


def run_stage(stage: str) -> None:
    """Execute the stage's notebook like ``papermill -k python3 --log-level WARNING``."""
    import papermill

    notebook, params = STAGES[stage][0], stage_parameters(stage)
    out_dir = resolve(params["run_dir"]) / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(resolve(f"notebooks/{notebook}.ipynb")),
        str(out_dir / f"{notebook}.ipynb"),
        parameters=params,
        kernel_name="python3",
        log_output=False,
        cwd=str(repo_root()),
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m s2i.stage", description=__doc__.split("\n\n")[0])
    ap.add_argument("stage", nargs="?", choices=list(STAGES), help="the dvc.yaml stage to run")
    ap.add_argument("--show", action="store_true", help="print the stage's notebook parameters; run nothing")
    ap.add_argument("--profile", metavar="NAME", help="write params.yaml = profile NAME (toy, smoke, full)")
    a = ap.parse_args(argv)
    if a.profile:
        print(f"{write_profile(a.profile)} is now the {a.profile} profile")
    elif a.stage is None:
        ap.error("name a stage or --profile")
    if a.stage and a.show:
        for name, value in stage_parameters(a.stage).items():
            print(f"{name} = {value!r}")
    elif a.stage:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        run_stage(a.stage)


if __name__ == "__main__":
    main()
