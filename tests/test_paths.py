"""Tests of ``s2i.paths`` (repository root, path resolution, profiles) and of the atomic JSON
writer in ``s2i.utils``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s2i import utils
from s2i.paths import load_params, load_profile, merge_params, repo_root, resolve, write_profile
from s2i.utils import read_json, write_json

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_env_root(monkeypatch):
    monkeypatch.delenv("S2I_ROOT", raising=False)


# --------------------------------------------------------------------------------------------
# repo_root / resolve
# --------------------------------------------------------------------------------------------
def test_repo_root_from_the_root_and_from_notebooks(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert repo_root() == ROOT
    monkeypatch.chdir(ROOT / "notebooks")  # where JupyterLab / nbval run the kernels
    assert repo_root() == ROOT
    assert resolve("params.yaml") == ROOT / "params.yaml"
    assert resolve("build/x") == ROOT / "build" / "x"


def test_repo_root_outside_the_repo_falls_back_to_the_package(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert repo_root() == ROOT  # s2i is installed editable from this checkout


def test_repo_root_prefers_the_nearest_marked_folder(monkeypatch, tmp_path):
    other = tmp_path / "other_repo"
    (other / "deep" / "er").mkdir(parents=True)
    (other / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(other / "deep" / "er")
    assert repo_root() == ROOT  # one marker is not enough
    (other / "pyproject.toml").write_text("")
    assert repo_root() == other.resolve()


def test_s2i_root_override(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT / "notebooks")
    monkeypatch.setenv("S2I_ROOT", str(tmp_path))
    assert repo_root() == tmp_path.resolve()
    assert resolve("a/b.json") == tmp_path.resolve() / "a" / "b.json"
    monkeypatch.setenv("S2I_ROOT", "..")  # relative: taken from the working directory
    assert repo_root() == ROOT


def test_resolve_relative_and_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert resolve("x/y") == ROOT / "x" / "y"  # not the working directory
    assert resolve(tmp_path / "z") == tmp_path / "z"  # absolute: kept as is
    assert resolve(str(tmp_path)) == tmp_path
    assert resolve("~/q") == Path.home() / "q"


# --------------------------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------------------------
def test_load_profile_unknown_names_the_file_and_the_choices(monkeypatch):
    monkeypatch.chdir(ROOT / "notebooks")
    with pytest.raises(FileNotFoundError) as e:
        load_profile("nope")
    msg = str(e.value)
    assert "'nope'" in msg and str(ROOT / "profiles" / "nope.yaml") in msg
    for name in ("toy", "smoke"):
        assert f"'{name}'" in msg


def _key_tree(d):
    return {k: _key_tree(v) if isinstance(v, dict) else None for k, v in d.items()}


@pytest.mark.parametrize("name", ["toy", "smoke", "full", "fullsmoke"])
def test_profiles_share_the_same_keys(name):
    if not (ROOT / "profiles" / f"{name}.yaml").exists():
        pytest.skip(f"profiles/{name}.yaml does not exist yet")
    p = load_profile(name)
    assert p["base"]["profile"] == ("full" if name == "fullsmoke" else name)  # fullsmoke: `extends: full`
    tree, toy = _key_tree(p), _key_tree(load_profile("toy"))
    if name in ("full", "fullsmoke"):  # their own sections: the pretrained loaders and the real-video stages
        assert set(tree) - set(toy) <= {"full", "real"}, set(tree) - set(toy)
        tree = {k: v for k, v in tree.items() if k not in ("full", "real")}
    assert tree == toy
    if name == "fullsmoke":  # only smaller values and the tiny-models switch over full's keys
        extra = _key_tree(p)["real"].keys() - _key_tree(load_profile("full"))["real"].keys()
        assert extra == {"tiny"}


def test_profiles_differ_in_size_not_in_shape():
    toy, smoke = load_profile("toy"), load_profile("smoke")
    assert smoke["world"]["n_clips"] < toy["world"]["n_clips"]
    assert (
        load_params(ROOT / "profiles" / "smoke.yaml")["world"]["n_clips"] == smoke["world"]["n_clips"]
    )  # absolute path
    nullable = {("sampling", "steps"), ("sampling", "guidance")}  # null: the generator's own (smoke: 5 steps)
    switches = {("pretrain", "gen_bf16")}  # true, false or "auto"
    for section in toy:  # same types key by key (a number stays a number ...)
        for k, v in toy[section].items():
            s = smoke[section][k]
            assert (
                type(s) is type(v)
                or {type(v), type(s)} <= {int, float}
                or ((section, k) in nullable and s is None)
                or ((section, k) in switches and {type(v), type(s)} <= {bool, str})
            ), (section, k)


def test_merge_params_is_a_nested_override():
    base = {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "b": [1, 2], "c": "keep"}
    diff = {"a": {"y": {"q": 3}}, "b": [9], "d": {"new": True}}
    assert merge_params(base, diff) == {"a": {"x": 1, "y": {"p": 1, "q": 3}}, "b": [9], "c": "keep", "d": {"new": True}}
    assert base["a"]["y"]["q"] == 2  # the base is not modified
    assert merge_params(base, None) == base and merge_params(base, {"a": 5})["a"] == 5


def test_profiles_are_toy_plus_their_diff():
    """profiles/toy.yaml holds every key; smoke and full hold only what differs, and load_profile
    composes them (s2i.paths.compose_profile)."""
    toy = load_params(ROOT / "profiles" / "toy.yaml")
    assert load_profile("toy") == toy and toy["base"]["profile"] == "toy"
    for name in ("smoke", "full"):
        diff = load_params(ROOT / "profiles" / f"{name}.yaml")
        assert load_profile(name) == merge_params(toy, diff)

        def leaves_differ(d, t, name=name):  # a diff names no key whose value equals toy's
            for k, v in d.items():
                if isinstance(v, dict) and isinstance(t.get(k), dict):
                    leaves_differ(v, t[k])
                else:
                    assert t.get(k, object()) != v, (name, k, v)

        leaves_differ(diff, toy)
    smoke, full = load_profile("smoke"), load_profile("full")
    assert (toy["world"]["n_clips"], smoke["world"]["n_clips"], full["world"]["n_clips"]) == (480, 60, 480)
    assert (
        toy["thumbnails"]["n_programmes"],
        smoke["thumbnails"]["n_programmes"],
        full["thumbnails"]["n_programmes"],
    ) == (48, 2, 12)
    assert (smoke["pretrain"]["model_dir"], full["pretrain"]["model_dir"]) == ("models/smoke", "models/toy")
    assert smoke["alignment"]["normalize"] is True and smoke["pretrain"]["gen_channels"] == "16,32,32"
    assert full["full"]["image_encoder"]["model"] == "ViT-H-14" and "full" not in toy


def test_write_profile_composes_params_yaml(tmp_path):
    for name in ("smoke", "full", "toy"):
        out = write_profile(name, tmp_path / "params.yaml")
        assert load_params(out) == load_profile(name)
    assert out.read_text() == (ROOT / "profiles" / "toy.yaml").read_text()  # the default verbatim


def test_params_yaml_is_one_of_the_profiles():
    params = load_params()
    name = params["base"]["profile"]
    assert _key_tree(params) == _key_tree(load_profile(name))


# --------------------------------------------------------------------------------------------
# write_json is atomic
# --------------------------------------------------------------------------------------------
def test_write_json_roundtrip_with_numpy(tmp_path):
    p = tmp_path / "sub" / "a.json"
    write_json(p, dict(x=np.float32(1.5), n=np.int64(3), arr=np.arange(3), path=Path("a/b"), s="é"))
    assert read_json(p) == dict(x=1.5, n=3, arr=[0, 1, 2], path="a/b", s="é")
    assert [q.name for q in p.parent.iterdir()] == ["a.json"]  # no temp file left


def test_write_json_failure_leaves_the_old_file_intact(tmp_path):
    p = tmp_path / "a.json"
    write_json(p, {"v": 1})
    before = p.read_bytes()
    with pytest.raises(TypeError):
        write_json(p, {"v": 2, "bad": {1, 2}})  # a set is not serialisable
    with pytest.raises(TypeError):
        write_json(p, {"v": 3, "deep": [1, 2, {"x": object()}]})  # fails half-way through the object
    assert p.read_bytes() == before
    assert [q.name for q in tmp_path.iterdir()] == ["a.json"]


def test_write_fails_during_the_write_leave_no_temp_file(tmp_path, monkeypatch):
    p = tmp_path / "a.json"
    write_json(p, {"v": 1})
    before = p.read_bytes()

    def broken_replace(src, dst):
        assert Path(src).parent == tmp_path and Path(src).exists()  # the temp file is complete ...
        assert json.loads(Path(src).read_text()) == {"v": 2}
        raise OSError("disk full")  # ... but the rename fails

    monkeypatch.setattr(utils.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_json(p, {"v": 2})
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert [q.name for q in tmp_path.iterdir()] == ["a.json"]
    write_json(p, {"v": 3})
    assert read_json(p) == {"v": 3}


def test_read_json_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        read_json(tmp_path / "broken.json")
