"""Retraining the toy denoiser alone (s2i/train/denoiser.py), on the smoke run's backbones."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from s2i.models.judge import Judge
from s2i.models.latent import LatentGenerator
from s2i.train import autoencoder as ta
from s2i.train import denoiser as dn
from s2i.utils import read_json, write_json


@pytest.fixture(scope="module")
def model_dir(smoke_run, tmp_path_factory):
    d = tmp_path_factory.mktemp("models") / "toy"
    shutil.copytree(smoke_run / "models", d)
    return d


@pytest.fixture(scope="module")
def stills(tmp_path_factory):
    p = dn.export_stills(tmp_path_factory.mktemp("stills") / "stills.npz", n_stills=48, seed=3, n_tuning=12)
    return np.load(p)


def test_export_holds_the_training_stills_bit_for_bit_and_tuning_stills_of_another_seed(stills):
    from s2i.toyworld.stills import make_stills

    assert np.array_equal(stills["images"], make_stills(48, 3).images)
    assert np.array_equal(stills["bg"], make_stills(48, 3).bg)
    assert stills["tuning_images"].shape == (12, 32, 32, 3)
    assert not np.array_equal(stills["tuning_images"], make_stills(12, 3).images)
    assert stills["tuning_presence"].shape[0] == 12 and int(stills["seed"]) == 3


def test_shards_round_trip_whole_tensors(tmp_path, model_dir, monkeypatch):
    gen = LatentGenerator.load(model_dir / "generator")
    monkeypatch.setattr(dn, "SHARD_MB", 0.01)  # 10 kB: every big tensor a shard of its own
    paths = dn.save_denoiser(gen, tmp_path)
    assert len(paths) > 2
    assert paths[0].name == f"denoiser-00001-of-{len(paths):05d}.safetensors"
    state = dn.load_denoiser_state(tmp_path)
    ref = gen.decoder.state_dict()
    assert state.keys() == ref.keys()
    assert all(torch.equal(state[k], ref[k]) for k in ref)
    with pytest.raises(FileNotFoundError, match="no denoiser"):
        dn.load_denoiser_state(tmp_path / "empty")


def test_a_retrained_denoiser_installs_beside_the_shipped_autoencoder(tmp_path, model_dir, stills):
    z, e = dn.training_targets(model_dir, stills["images"], "cpu")
    assert z.shape[0] == e.shape[0] == 48 and z.std().item() == pytest.approx(1.0, abs=0.5)
    recipe = dict(steps=3, batch=8, lr=1e-3, ema_decay=0.99)
    gen = dn.train_denoiser(model_dir, z, e, recipe, seed=0, device="cpu")
    run = tmp_path / "run"
    dn.save_denoiser(gen, run)
    write_json(run / "recipe.json", dict(recipe=recipe, seed=0, device="cpu", emb_rms=gen.emb_rms, loss=[[0, 1.0]]))
    ae_before = (model_dir / "generator" / "autoencoder.safetensors").read_bytes()
    dn.install(run, model_dir)
    back = LatentGenerator.load(model_dir / "generator")
    assert back.cfg.steps == 3 and back.cfg.batch == 8 and back.cfg.ema_decay == 0.99
    assert all(torch.equal(a, b) for a, b in zip(back.decoder.state_dict().values(), gen.decoder.state_dict().values()))
    assert (model_dir / "generator" / "autoencoder.safetensors").read_bytes() == ae_before
    manifest = read_json(model_dir / "manifest.json")
    assert manifest["generator_retrained"]["recipe"] == recipe and not {"emb_rms", "loss"} & set(
        manifest["generator_retrained"]
    )
    _, e_t = dn.training_targets(model_dir, stills["tuning_images"], "cpu")
    judge = Judge.load(model_dir / "judge")
    scores = dn.judge_tuning(
        back,
        judge,
        stills["tuning_images"],
        stills["tuning_presence"],
        stills["tuning_sizes"],
        stills["tuning_bg"],
        e_t,
        0,
    )
    assert 0.0 <= scores["recon_class_acc"] <= 1.0 and set(scores) >= {"recon_class_acc", "recon_size_spearman"}


def test_the_train_command_writes_weights_then_the_recipe_and_tuning_figures(tmp_path, model_dir, stills):
    src = tmp_path / "stills.npz"
    np.savez(src, **{k: stills[k] for k in stills.files})
    run = tmp_path / "run"
    args = ["--model-dir", str(model_dir), "--batch", "4", "--lr", "1e-3", "--steps", "2", "--bf16", "auto"]
    dn.main(["train", str(src), str(run), *args, "--snr-floor", "5"])
    rec = json.loads((run / "recipe.json").read_text())
    assert rec["recipe"] == dict(batch=4, lr=1e-3, ema_decay=0.999, bf16="auto", snr_floor=5.0, steps=2)
    assert rec["device"] == "cpu" and rec["tuning"]["n"] == 12 and len(rec["loss"]) >= 1
    assert dn.load_denoiser_state(run) and not (run / dn.CHECKPOINT).exists()  # the weights replace it
    assert dn.load_run(run, model_dir).cfg.snr_floor == 5.0  # the run's recipe goes with its weights


def test_a_run_started_from_the_installed_generator_continues_its_weights(tmp_path, model_dir, stills):
    z, e = dn.training_targets(model_dir, stills["images"], "cpu")
    installed = dn.init_state("installed", model_dir)
    ref = LatentGenerator.load(model_dir / "generator").decoder.state_dict()
    assert all(torch.equal(installed[k], ref[k]) for k in ref)
    recipe = dict(steps=1, batch=8, lr=1e-9, ema_decay=0.99)
    start = {k: v + 0.5 for k, v in installed.items()}  # weights no fresh initialisation comes near

    def gap(gen):  # the largest change of any weight from the start's
        return max((v - start[k]).abs().max().item() for k, v in gen.decoder.state_dict().items())

    assert gap(dn.train_denoiser(model_dir, z, e, recipe, seed=0, device="cpu", init=start)) < 1e-5
    assert gap(dn.train_denoiser(model_dir, z, e, recipe, seed=0, device="cpu")) > 0.1
    src, run = tmp_path / "stills.npz", tmp_path / "run"
    np.savez(src, **{k: stills[k] for k in stills.files})
    args = ["--model-dir", str(model_dir), "--batch", "4", "--lr", "1e-9", "--steps", "1"]
    dn.main(["train", str(src), str(run), *args, "--init", "installed"])
    rec = read_json(run / "recipe.json")
    manifest = read_json(model_dir / "manifest.json")
    assert rec["init"] == dict(source="installed", record=manifest.get("generator_retrained"))
    dn.main(["train", str(src), str(tmp_path / "run2"), *args, "--init", str(run)])  # a run from a run
    assert read_json(tmp_path / "run2" / "recipe.json")["init"]["record"]["init"]["source"] == "installed"


class _Killed(Exception):
    pass


def test_a_stopped_train_run_resumes_from_its_checkpoint_to_the_same_weights(tmp_path, model_dir, stills):
    z, e = dn.training_targets(model_dir, stills["images"], "cpu")
    recipe = dict(steps=3, batch=8, lr=1e-3, ema_decay=0.9)
    ck = tmp_path / dn.CHECKPOINT

    def kill_at_last(row):
        if row["step"] == 2:  # logged at the last step, after the step-2 checkpoint
            raise _Killed

    with pytest.raises(_Killed):
        dn.train_denoiser(model_dir, z, e, recipe, 0, "cpu", kill_at_last, ckpt_path=ck, ckpt_every=1)
    assert torch.load(ck, weights_only=False)["step"] == 2
    steps = []
    resumed = dn.train_denoiser(
        model_dir, z, e, recipe, 0, "cpu", lambda r: steps.append(r["step"]), ckpt_path=ck, ckpt_every=1
    )
    assert steps == [2]  # steps 0-1 not redone
    ref = dn.train_denoiser(model_dir, z, e, recipe, 0, "cpu")
    assert all(
        torch.equal(p, q) for p, q in zip(resumed.decoder.state_dict().values(), ref.decoder.state_dict().values())
    )


def test_the_train_command_resumes_only_its_own_checkpoint(tmp_path, model_dir, stills):
    src, run = tmp_path / "stills.npz", tmp_path / "run"
    np.savez(src, **{k: stills[k] for k in stills.files})
    args = ["train", str(src), str(run), "--model-dir", str(model_dir), "--batch", "4", "--steps", "2"]
    run.mkdir()
    (run / dn.CHECKPOINT).write_bytes(b"left by a run of another recipe")
    write_json(run / "checkpoint.json", dict(recipe=dict(lr=1.0)))
    with pytest.raises(SystemExit, match="checkpoint of another run"):
        dn.main([*args, "--lr", "1e-3"])
    (run / dn.CHECKPOINT).unlink()
    dn.main([*args, "--lr", "1e-3"])  # no checkpoint: a fresh run, which leaves none behind
    assert not (run / dn.CHECKPOINT).exists() and not (run / "checkpoint.json").exists()


def test_the_shipped_generator_holds_the_recipe_and_figures_its_manifest_names():
    from s2i.paths import repo_root

    models = repo_root() / "models" / "toy"
    manifest = read_json(models / "manifest.json")
    cfg = read_json(models / "generator" / "s2i_generator.json")["cfg"]
    retrained = manifest.get("generator_retrained")
    if retrained is not None:  # the denoiser was replaced after the pretrain stage
        assert {k: cfg[k] for k in retrained["recipe"]} == retrained["recipe"]
    assert read_json(repo_root() / "results" / "metrics" / "backbones.json") == manifest["metrics"]


def test_measure_redoes_the_stage_figures_of_the_installed_backbones(tmp_path, model_dir):
    from s2i.train.pretrain import write_measurements

    run_dir = tmp_path / "run"
    params = dict(base=dict(seed=0, run_dir=str(run_dir)), pretrain=dict(n_stills=96, n_heldout=48, n_recon=8))
    write_measurements(model_dir, params)
    metrics = read_json(run_dir / "metrics" / "backbones.json")
    assert metrics == read_json(model_dir / "manifest.json")["metrics"]
    assert metrics["n_heldout"] == 48 and 0.0 <= metrics["recon_class_acc"] <= 1.0
    lo, hi = metrics["recon_class_acc_ci95"]  # over the single-object stills among the 8 drawn back
    assert lo <= metrics["recon_class_acc"] <= hi
    assert (run_dir / "figures" / "pretrain_recon_grid.png").stat().st_size > 0


def test_export_takes_more_or_fewer_training_stills_than_the_stage(tmp_path):
    out = tmp_path / "few.npz"
    dn.main(["export", str(out), "--n-stills", "20", "--n-tuning", "4"])
    d = np.load(out)
    assert d["images"].shape == (20, 32, 32, 3) and d["tuning_images"].shape == (4, 32, 32, 3)


def test_a_denoiser_trains_and_installs_with_an_autoencoder_of_its_own(tmp_path, model_dir, stills):
    """A 16x16 autoencoder (one halving) trained by the autoencoder command, a denoiser trained
    on its latents, both installed: the generator then draws from 16x16 latents."""
    models = tmp_path / "toy"
    shutil.copytree(model_dir, models)
    src, ae_dir, run = tmp_path / "stills.npz", tmp_path / "ae16", tmp_path / "run"
    np.savez(src, **{k: stills[k] for k in stills.files})
    common = ["--model-dir", str(models), "--threads", "1"]
    dn.main(["autoencoder", str(src), str(ae_dir), "--halvings", "1", "--channels", "4", "--steps", "3", *common])
    rec = read_json(ae_dir / ta.AE_JSON)
    assert rec["latent"]["ae_halvings"] == 1 and rec["latent"]["channels"] == 4
    reads = rec["tuning"]["autoencoder"]
    assert rec["tuning"]["n"] == int((stills["tuning_presence"].sum(1) == 1).sum())
    assert 0.0 <= reads["all"] <= 1.0 and len(reads["by_size"]) == 3 and len(reads["by_shape"]) == 8
    args = ["--batch", "4", "--lr", "1e-3", "--steps", "2", "--autoencoder", str(ae_dir), "--n-stills", "40", *common]
    dn.main(["train", str(src), str(run), *args])
    rec = read_json(run / "recipe.json")
    assert rec["autoencoder"] == str(ae_dir) and rec["n_stills"] == 40 and "shape_read" in rec["tuning"]
    gen = dn.install(run, models)
    assert gen.noise_shape == (4, 16, 16)
    back = LatentGenerator.load(models / "generator")
    assert back.noise_shape == (4, 16, 16) and back.cfg.latent["ae_halvings"] == 1
    assert (models / "generator" / "autoencoder.safetensors").read_bytes() != (
        model_dir / "generator" / "autoencoder.safetensors"
    ).read_bytes()
    assert back(torch.zeros(2, back.decoder.embed_dim), seed=0).shape == (2, 32, 32, 3)


def test_a_decoder_finetuned_with_its_encoder_frozen_installs_beside_the_denoiser(tmp_path, model_dir, stills):
    models = tmp_path / "toy"
    shutil.copytree(model_dir, models)
    src, ae_dir = tmp_path / "stills.npz", tmp_path / "dec"
    np.savez(src, **{k: stills[k] for k in stills.files})
    dn.main(["decoder", str(src), str(ae_dir), "--model-dir", str(models), "--steps", "3", "--threads", "1"])
    rec = read_json(ae_dir / ta.AE_JSON)
    assert rec["recipe"]["steps"] == 3
    assert set(rec["tuning"]["finetuned"]) == {"reconstructed", "drawn"}
    before = LatentGenerator.load(models / "generator")
    tuned = ta.load_autoencoder(models, ae_dir)
    old, new = before.autoencoder.state_dict(), tuned.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old if k.startswith("enc.") or k == "scaling_factor")
    assert not all(torch.equal(old[k], new[k]) for k in old if k.startswith("dec."))
    ta.install_decoder(ae_dir, models)
    after = LatentGenerator.load(models / "generator")
    assert all(torch.equal(a, b) for a, b in zip(after.autoencoder.state_dict().values(), new.values()))
    assert all(
        torch.equal(a, b) for a, b in zip(after.decoder.state_dict().values(), before.decoder.state_dict().values())
    )
    assert read_json(models / "manifest.json")["decoder_finetuned"]["recipe"]["steps"] == 3
    # an autoencoder with an encoder of its own is another latent space: refused, named
    other = ta.fit_autoencoder(stills["images"], dict(before.cfg.latent, ae_steps=2), seed=1)
    ta.save_autoencoder(other, before.cfg.latent, tmp_path / "other")
    with pytest.raises(ValueError, match=r"other/autoencoder.safetensors: its encoder is not the installed one"):
        ta.install_decoder(tmp_path / "other", models)


def test_a_denoiser_trains_with_the_objects_cells_weighed_more(tmp_path, model_dir, stills):
    from s2i.toyworld.stills import object_cover

    z, e = dn.training_targets(model_dir, stills["images"], "cpu")
    cover = torch.from_numpy(object_cover(stills["images"], stills["bg"], z.shape[-1]))
    recipe = dict(steps=2, batch=8, lr=1e-3, ema_decay=0.9)
    plain = dn.train_denoiser(model_dir, z, e, recipe, 0, "cpu", cover=cover)  # weight 0: cover unused
    again = dn.train_denoiser(model_dir, z, e, recipe, 0, "cpu")
    weighed = dn.train_denoiser(model_dir, z, e, dict(recipe, object_weight=8.0), 0, "cpu", cover=cover)
    same = [torch.equal(p, q) for p, q in zip(plain.decoder.parameters(), again.decoder.parameters())]
    moved = [torch.equal(p, q) for p, q in zip(plain.decoder.parameters(), weighed.decoder.parameters())]
    assert all(same) and not all(moved)
    # the step the train command times (--seconds) is the weighed one
    timed = dict(batch=8, lr=1e-3, object_weight=8.0)
    assert dn.seconds_per_step(model_dir, z, e, timed, "cpu", n=2, cover=cover) > 0
    old, new, run = tmp_path / "old.npz", tmp_path / "new.npz", tmp_path / "run"
    np.savez(old, **{k: stills[k] for k in stills.files if k != "bg"})  # an export from before the places
    np.savez(new, **{k: stills[k] for k in stills.files})
    args = ["--model-dir", str(model_dir), "--batch", "4", "--lr", "1e-3", "--steps", "1", "--object-weight", "8"]
    with pytest.raises(SystemExit, match="old.npz: exported without the stills' places"):
        dn.main(["train", str(old), str(run), *args])
    dn.main(["train", str(new), str(run), *args])
    assert read_json(run / "recipe.json")["recipe"]["object_weight"] == 8.0
    assert dn.load_run(run, model_dir).cfg.object_weight == 8.0
