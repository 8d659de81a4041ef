"""Where the ``full`` profile's weights come from: local Hugging Face caches offline, the
libraries' own downloads online.

The caches here are laid out by hand exactly as ``huggingface_hub`` lays out a download
(``models--org--name/{blobs,snapshots/<commit>,refs/main,trees/<commit>.json}``, blobs named by
their ETag, snapshot files symlinked to them), filled with tiny random models saved in the real
formats. A small in-process HTTP server that answers like the Hub (the ``resolve`` and ``api``
routes ``huggingface_hub`` uses) lets open_clip and diffusers really download, so the tests also
check that their downloads lay out the very same cache as the hand-made one, and count the
requests that reach the "Hub". No mocks of s2i, open_clip or diffusers.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import open_clip
import pytest
import torch
from huggingface_hub import constants, get_cached_repo_tree, hf_api, scan_cache_dir, try_to_load_from_cache
from safetensors.torch import load_file

from s2i.backbones.openclip import MissingWeightsError, _cached_tag_checkpoint, hub_offline, load_openclip_encoder
from s2i.backbones.unclip import load_unclip_pipeline, unclip_embed_dim
from s2i.testing import make_tiny_openclip_checkpoint, make_tiny_unclip_pipeline

EMBED_DIM = 32
MODEL = "s2i-hub-tiny-ViT"
CLIP_REPO = "s2i-test/tiny-openclip"
UNCLIP_REPO = "s2i-test/tiny-unclip"
VIT_H_REPO = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"  # where open_clip's ViT-H-14 laion2b_s32b_b79k tag points
CLIP_COMMIT = "1c2b3a4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
UNCLIP_COMMIT = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"
NO_NETWORK = "http://127.0.0.1:9"  # the discard port: connections are refused at once

# what the Hub stores with git LFS (the default .gitattributes of a model repo)
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5", ".onnx")
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()


# ------------------------------------------------------------------------------- the Hub's layout


def _git_oid(data: bytes) -> str:
    """The git blob id of ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _hub_entry(path: str, data: bytes) -> dict:
    """What the Hub says about a file: ``oid`` and ``size``, and for an LFS file its ``lfs`` info
    (the git object is then the LFS pointer, the ETag the content's sha256)."""
    if not path.endswith(LFS_SUFFIXES):
        return {"type": "file", "path": path, "size": len(data), "oid": _git_oid(data), "etag": _git_oid(data)}
    sha = hashlib.sha256(data).hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()
    lfs = {"oid": sha, "size": len(data), "pointerSize": len(pointer)}
    return {"type": "file", "path": path, "size": len(data), "oid": _git_oid(pointer), "lfs": lfs, "etag": sha}


def lay_out_hub_cache(
    cache: Path,
    repo_id: str,
    files: dict[str, bytes],
    commit: str,
    snapshot: Iterable[str] | None = None,
    tree: bool = False,
) -> Path:
    """Write ``files`` of a Hub repo into the cache ``cache`` as ``huggingface_hub`` downloads do.

    ``snapshot`` lists the files that were downloaded (default: all). ``tree`` also writes the
    repo's tree listing, as ``snapshot_download`` (thus diffusers) does. Returns the snapshot folder.
    """
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    snap = storage / "snapshots" / commit
    for path in files if snapshot is None else snapshot:
        etag = _hub_entry(path, files[path])["etag"]
        blob = storage / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(files[path])
        pointer = snap / path
        pointer.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, pointer.parent), pointer)
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(commit)  # the bare hash, no newline
    if tree:
        listing = {}
        for path, data in sorted(files.items()):
            e = _hub_entry(path, data)
            listing[path] = {"size": e["size"], "blob_id": e["oid"]}
            if "lfs" in e:
                listing[path].update(lfs_sha256=e["lfs"]["oid"], lfs_size=e["lfs"]["size"])
        (storage / "trees").mkdir(exist_ok=True)
        (storage / "trees" / f"{commit}.json").write_text(json.dumps({"format_version": 1, "files": listing}, indent=1))
    from huggingface_hub._local_folder import CACHEDIR_TAG_CONTENT

    (cache / "CACHEDIR.TAG").write_text(CACHEDIR_TAG_CONTENT)
    return snap


def describe_cache(cache: Path) -> dict[str, tuple[str, str]]:
    """Every entry of a cache but the lock files: symlinks by target, files by content hash."""
    out = {}
    for p in sorted(cache.rglob("*")):
        rel = p.relative_to(cache).as_posix()
        if rel.startswith(".locks") or (p.is_dir() and not p.is_symlink()):
            continue
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        else:
            out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
    return out


# ------------------------------------------------------------------------------- a Hub on localhost


class FakeHub(ThreadingHTTPServer):
    """Serves repos on the Hub's routes: ``HEAD/GET /{repo}/resolve/{rev}/{path}`` with the Hub's
    headers (``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``/``X-Linked-Size`` for LFS files),
    ``/api/models/{repo}[/revision/{rev}]`` and ``/api/models/{repo}/tree/{rev}``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.repos: dict[str, tuple[str, dict[str, bytes]]] = {}
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def repo_requests(self) -> list[str]:
        """The requests for a repo (huggingface_hub also asks for things of its own, e.g. its
        ``/api/agent-harnesses`` registry when it builds its first headers)."""
        return [r for r in self.requests if r.split()[1].startswith("/api/models/") or "/resolve/" in r]


class _HubHandler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, code: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(code)
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    def _json(self, obj) -> None:
        self._send(200, {"Content-Type": "application/json"}, json.dumps(obj).encode())

    def _repo(self, parts: list[str]) -> tuple[str, str, dict[str, bytes]] | None:
        repo_id = "/".join(parts[:2])
        if repo_id not in self.server.repos:
            self._send(401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
            return None
        return repo_id, *self.server.repos[repo_id]

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
        if parts[:2] == ["api", "models"]:
            found = self._repo(parts[2:])
            if found is None:
                return
            repo_id, commit, files = found
            if len(parts) >= 6 and parts[4] == "tree":
                self._json([{k: v for k, v in _hub_entry(p, d).items() if k != "etag"} for p, d in files.items()])
            else:
                siblings = [{"rfilename": p} for p in files]
                self._json({"id": repo_id, "sha": commit, "siblings": siblings, "private": False, "tags": []})
        elif len(parts) >= 5 and parts[2] == "resolve":
            found = self._repo(parts)
            if found is None:
                return
            _, commit, files = found
            path = "/".join(parts[4:])
            if parts[3] not in ("main", commit) or path not in files:
                self._send(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
                return
            e = _hub_entry(path, files[path])
            headers = {"X-Repo-Commit": commit, "ETag": f'"{e["oid"]}"'}
            if "lfs" in e:
                headers.update({"X-Linked-Etag": f'"{e["etag"]}"', "X-Linked-Size": str(e["size"])})
            self._send(200, headers, files[path])
        else:
            self._send(404, {})


# ------------------------------------------------------------------------------- fixtures


def _read_tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def clip_repo(tmp_path_factory) -> dict[str, bytes]:
    """A tiny OpenCLIP Hub repo, laid out like laion/CLIP-ViT-H-14-laion2B-s32B-b79K (config, the
    weights as safetensors and as .bin, README, .gitattributes)."""
    src = tmp_path_factory.mktemp("openclip")
    make_tiny_openclip_checkpoint(src / "st", model_name=MODEL, embed_dim=EMBED_DIM, fmt="safetensors", seed=0)
    make_tiny_openclip_checkpoint(src / "bin", model_name=MODEL, embed_dim=EMBED_DIM, fmt="bin", seed=0)
    files = {".gitattributes": GITATTRIBUTES, "README.md": b"# tiny OpenCLIP\n"}
    for name in ("open_clip_config.json", "open_clip_model.safetensors"):
        files[name] = (src / "st" / name).read_bytes()
    files["open_clip_pytorch_model.bin"] = (src / "bin" / "open_clip_pytorch_model.bin").read_bytes()
    return files


@pytest.fixture(scope="module")
def unclip_repo(tmp_path_factory) -> dict[str, bytes]:
    """A tiny Stable unCLIP Hub repo: a ``save_pretrained`` folder plus what the real
    stabilityai/stable-diffusion-2-1-unclip also holds at its root (an original-format .ckpt,
    README, .gitattributes)."""
    folder = make_tiny_unclip_pipeline(tmp_path_factory.mktemp("unclip") / "pipe", embed_dim=EMBED_DIM)
    files = _read_tree(Path(folder))
    files.update({".gitattributes": GITATTRIBUTES, "README.md": b"# tiny unCLIP\n", "tiny-unclip.ckpt": b"\0" * 64})
    return files


@pytest.fixture(scope="module")
def hub(clip_repo, unclip_repo) -> Iterator[FakeHub]:
    server = FakeHub()
    server.repos = {CLIP_REPO: (CLIP_COMMIT, clip_repo), UNCLIP_REPO: (UNCLIP_COMMIT, unclip_repo)}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _use_endpoint(monkeypatch, url: str) -> None:
    """Point huggingface_hub at ``url`` in this process (it reads HF_ENDPOINT once, at import)."""
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hf_api.api, "endpoint", url)  # the module-level HfApi behind model_info & co


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    """An empty Hugging Face cache, also the default one (HF_HUB_CACHE): the real one is never touched."""
    folder = tmp_path / "hf-cache"
    folder.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder))
    return folder


@pytest.fixture
def offline(monkeypatch, hub: FakeHub) -> FakeHub:
    """HF_HUB_OFFLINE=1, with the fake Hub as endpoint: any request that reached it would be counted."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _use_endpoint(monkeypatch, hub.url)
    hub.requests.clear()
    return hub


@pytest.fixture
def online(monkeypatch, hub: FakeHub) -> FakeHub:
    """Online mode, the fake Hub as endpoint."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    _use_endpoint(monkeypatch, hub.url)
    hub.requests.clear()
    return hub


@pytest.fixture
def no_network(online: FakeHub, monkeypatch) -> None:
    """Online mode, but the Hub cannot be reached."""
    _use_endpoint(monkeypatch, NO_NETWORK)


@pytest.fixture
def tiny_tag(monkeypatch, clip_repo) -> str:
    """A pretrained tag of the tiny architecture (registered with open_clip by ``clip_repo``) whose
    weights live on the Hub, as ViT-H-14's do."""
    monkeypatch.setitem(
        open_clip.pretrained._PRETRAINED, MODEL, {"tiny": open_clip.pretrained._pcfg(hf_hub=f"{CLIP_REPO}/")}
    )
    return "tiny"


def _assert_tiny_clip(enc, clip_repo: dict[str, bytes], tmp_path: Path) -> None:
    """The encoder holds exactly the repo's weights (a random initialisation would not)."""
    (tmp_path / "ref.safetensors").write_bytes(clip_repo["open_clip_model.safetensors"])
    ref = load_file(str(tmp_path / "ref.safetensors"))
    got = enc.model.state_dict()
    assert set(got) == set(ref)
    for k, v in ref.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0, msg=k)
    assert enc.embed_dim == EMBED_DIM


def _assert_tiny_unclip(pipe, unclip_repo: dict[str, bytes], tmp_path: Path) -> None:
    assert unclip_embed_dim(pipe) == EMBED_DIM
    for part in ("unet", "vae"):
        f = tmp_path / f"{part}.safetensors"
        f.write_bytes(unclip_repo[f"{part}/diffusion_pytorch_model.safetensors"])
        ref, got = load_file(str(f)), getattr(pipe, part).state_dict()
        for k, v in ref.items():
            torch.testing.assert_close(got[k], v, rtol=0, atol=0, msg=f"{part}.{k}")


# ------------------------------------------------------------------------------- the layout itself


def test_hand_made_cache_is_a_hub_cache(cache: Path, clip_repo, unclip_repo) -> None:
    """huggingface_hub's own readers take the hand-made layout for one of its downloads."""
    snap = lay_out_hub_cache(cache, CLIP_REPO, clip_repo, CLIP_COMMIT)
    lay_out_hub_cache(cache, UNCLIP_REPO, unclip_repo, UNCLIP_COMMIT, tree=True)

    info = scan_cache_dir(cache)
    assert not info.warnings
    repos = {r.repo_id: r for r in info.repos}
    assert set(repos) == {CLIP_REPO, UNCLIP_REPO}
    (rev,) = repos[CLIP_REPO].revisions
    assert rev.commit_hash == CLIP_COMMIT and rev.refs == frozenset({"main"})
    assert {f.file_name for f in rev.files} == {Path(p).name for p in clip_repo}
    assert repos[CLIP_REPO].size_on_disk == sum(len(d) for d in clip_repo.values())

    hit = try_to_load_from_cache(CLIP_REPO, "open_clip_model.safetensors")  # the default cache: HF_HUB_CACHE
    assert hit == str(snap / "open_clip_model.safetensors")
    assert Path(hit).read_bytes() == clip_repo["open_clip_model.safetensors"]
    assert os.readlink(hit) == "../../blobs/" + hashlib.sha256(clip_repo["open_clip_model.safetensors"]).hexdigest()
    config = try_to_load_from_cache(CLIP_REPO, "open_clip_config.json")
    assert os.readlink(config) == "../../blobs/" + _git_oid(clip_repo["open_clip_config.json"])

    tree = {f.path: f for f in get_cached_repo_tree(UNCLIP_REPO)}
    assert set(tree) == set(unclip_repo)
    assert tree["unet/config.json"].blob_id == _git_oid(unclip_repo["unet/config.json"])
    unet = "unet/diffusion_pytorch_model.safetensors"  # LFS: the git object is the pointer file
    assert tree[unet].blob_id == _hub_entry(unet, unclip_repo[unet])["oid"] != _git_oid(unclip_repo[unet])
    assert tree[unet].size == len(unclip_repo[unet])


# ------------------------------------------------------------------------------- offline: HF_HUB_OFFLINE=1


def test_offline_openclip_hf_hub_id_from_cache(cache: Path, offline: FakeHub, clip_repo, tmp_path: Path) -> None:
    snap = lay_out_hub_cache(
        cache, CLIP_REPO, clip_repo, CLIP_COMMIT, ["open_clip_config.json", "open_clip_model.safetensors"]
    )
    assert hub_offline()
    enc = load_openclip_encoder(f"hf-hub:{CLIP_REPO}", None)  # the default cache
    assert enc.checkpoint == str(snap)
    _assert_tiny_clip(enc, clip_repo, tmp_path)
    # an explicit cache_dir works the same
    assert load_openclip_encoder(f"hf-hub:{CLIP_REPO}", None, cache_dir=cache).checkpoint == str(snap)
    assert offline.repo_requests == []


def test_offline_openclip_tag_from_cache(
    cache: Path, offline: FakeHub, clip_repo, tiny_tag: str, tmp_path: Path
) -> None:
    """A Hub-hosted pretrained tag is read from the repo's cache; open_clip prefers the safetensors."""
    snap = lay_out_hub_cache(
        cache, CLIP_REPO, clip_repo, CLIP_COMMIT, ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    )
    enc = load_openclip_encoder(MODEL, tiny_tag, cache_dir=cache)
    assert enc.checkpoint == str(snap / "open_clip_model.safetensors")
    _assert_tiny_clip(enc, clip_repo, tmp_path)
    assert offline.repo_requests == []


def test_offline_vit_h_tag_resolves_to_its_hub_repo(cache: Path, offline: FakeHub, clip_repo) -> None:
    """``ViT-H-14`` / ``laion2b_s32b_b79k`` is looked up in laion/CLIP-ViT-H-14-laion2B-s32B-b79K's cache.

    Only the lookup: the real architecture (about 1 billion parameters) is not built in a unit test,
    and tiny weights would not load into it.
    """
    snap = lay_out_hub_cache(cache, VIT_H_REPO, clip_repo, CLIP_COMMIT, ["open_clip_pytorch_model.bin"])
    assert _cached_tag_checkpoint("ViT-H-14", "laion2b_s32b_b79k", None) == (
        str(snap / "open_clip_pytorch_model.bin"),
        VIT_H_REPO,
    )
    # with the safetensors there too, that one wins (as open_clip's download would)
    lay_out_hub_cache(cache, VIT_H_REPO, clip_repo, CLIP_COMMIT, ["open_clip_model.safetensors"])
    assert _cached_tag_checkpoint("ViT-H-14", "laion2b_s32b_b79k", str(cache))[0] == str(
        snap / "open_clip_model.safetensors"
    )


def test_offline_unclip_hub_id_from_cache(cache: Path, offline: FakeHub, unclip_repo, tmp_path: Path) -> None:
    """As diffusers leaves a download: the pipeline's files in the snapshot, the repo's full listing
    in trees/ (the root .ckpt, README and .gitattributes were not fetched)."""
    pipeline_files = [p for p in unclip_repo if "/" in p or p == "model_index.json"]
    lay_out_hub_cache(cache, UNCLIP_REPO, unclip_repo, UNCLIP_COMMIT, pipeline_files, tree=True)
    pipe = load_unclip_pipeline(UNCLIP_REPO, cache_dir=cache)
    _assert_tiny_unclip(pipe, unclip_repo, tmp_path)
    assert offline.repo_requests == []


def test_offline_incomplete_unclip_snapshot_is_missing(cache: Path, offline: FakeHub, unclip_repo) -> None:
    """A download cut short (the listing names a file the snapshot lacks) is not taken for a pipeline."""
    pipeline_files = [p for p in unclip_repo if "/" in p or p == "model_index.json"]
    pipeline_files.remove("unet/diffusion_pytorch_model.safetensors")
    lay_out_hub_cache(cache, UNCLIP_REPO, unclip_repo, UNCLIP_COMMIT, pipeline_files, tree=True)
    with pytest.raises(MissingWeightsError, match="HF_HUB_OFFLINE is set") as err:
        load_unclip_pipeline(UNCLIP_REPO)
    assert f"hf download {UNCLIP_REPO}" in str(err.value)
    assert offline.repo_requests == []


def test_offline_missing_models_say_what_to_fetch(cache: Path, offline: FakeHub, tiny_tag: str) -> None:
    """Nothing in the cache, offline: one MissingWeightsError each, with the command, no request."""
    with pytest.raises(MissingWeightsError) as err:
        load_openclip_encoder(f"hf-hub:{CLIP_REPO}", None)
    msg = str(err.value)
    assert f"hf download {CLIP_REPO} open_clip_config.json open_clip_model.safetensors" in msg
    assert "HF_HUB_OFFLINE is set" in msg and str(cache) in msg

    with pytest.raises(MissingWeightsError) as err:
        load_openclip_encoder("ViT-H-14", "laion2b_s32b_b79k")
    msg = str(err.value)
    assert f"hf download {VIT_H_REPO} open_clip_pytorch_model.bin" in msg and "hf-hub:" + VIT_H_REPO in msg
    assert "full.image_encoder.pretrained" in msg and "HF_HUB_OFFLINE is set" in msg and str(cache) in msg

    with pytest.raises(MissingWeightsError, match=f"hf download {CLIP_REPO}"):
        load_openclip_encoder(MODEL, tiny_tag)

    with pytest.raises(MissingWeightsError) as err:
        load_unclip_pipeline("stabilityai/stable-diffusion-2-1-unclip")
    msg = str(err.value)
    assert "hf download stabilityai/stable-diffusion-2-1-unclip --exclude '*.ckpt'" in msg
    assert "full.generator.path" in msg and "HF_HUB_OFFLINE is set" in msg and str(cache) in msg
    assert offline.repo_requests == []


# ------------------------------------------------------------------------------- online


def test_online_cached_models_need_no_request(
    cache: Path, online: FakeHub, clip_repo, unclip_repo, tiny_tag: str
) -> None:
    """Complete in the cache: used as is, the Hub is not asked."""
    lay_out_hub_cache(cache, CLIP_REPO, clip_repo, CLIP_COMMIT)
    pipeline_files = [p for p in unclip_repo if "/" in p or p == "model_index.json"]
    lay_out_hub_cache(cache, UNCLIP_REPO, unclip_repo, UNCLIP_COMMIT, pipeline_files, tree=True)
    assert not hub_offline()
    load_openclip_encoder(f"hf-hub:{CLIP_REPO}", None)
    load_openclip_encoder(MODEL, tiny_tag)
    load_unclip_pipeline(UNCLIP_REPO)
    assert online.repo_requests == []


def test_online_openclip_downloads_into_the_hub_layout(
    cache: Path, online: FakeHub, clip_repo, tiny_tag: str, tmp_path: Path
) -> None:
    """open_clip downloads a tag's weights, then an hf-hub: repo, into the Hugging Face cache: the
    very layout the hand-made caches copy."""
    enc = load_openclip_encoder(MODEL, tiny_tag)
    assert any(
        r.startswith("GET /s2i-test/tiny-openclip/resolve/main/open_clip_model.safetensors") for r in online.requests
    )
    _assert_tiny_clip(enc, clip_repo, tmp_path)
    hand = tmp_path / "hand"
    lay_out_hub_cache(hand, CLIP_REPO, clip_repo, CLIP_COMMIT, ["open_clip_model.safetensors"])
    assert describe_cache(cache) == describe_cache(hand)

    enc = load_openclip_encoder(f"hf-hub:{CLIP_REPO}", None)
    _assert_tiny_clip(enc, clip_repo, tmp_path)
    lay_out_hub_cache(hand, CLIP_REPO, clip_repo, CLIP_COMMIT, ["open_clip_config.json"])
    assert describe_cache(cache) == describe_cache(hand)
    assert enc.checkpoint == str(cache / f"models--{CLIP_REPO.replace('/', '--')}" / "snapshots" / CLIP_COMMIT)


def test_online_unclip_downloads_into_the_hub_layout(cache: Path, online: FakeHub, unclip_repo, tmp_path: Path) -> None:
    """diffusers downloads the pipeline's files (not the root .ckpt) and the repo's listing."""
    pipe = load_unclip_pipeline(UNCLIP_REPO)
    _assert_tiny_unclip(pipe, unclip_repo, tmp_path)
    assert not any("tiny-unclip.ckpt" in r and r.startswith("GET") for r in online.requests)
    hand = tmp_path / "hand"
    pipeline_files = [p for p in unclip_repo if "/" in p or p == "model_index.json"]
    lay_out_hub_cache(hand, UNCLIP_REPO, unclip_repo, UNCLIP_COMMIT, pipeline_files, tree=True)
    assert describe_cache(cache) == describe_cache(hand)


def test_online_unknown_repos_raise_missing_weights(cache: Path, online: FakeHub) -> None:
    """The Hub answers 401 RepoNotFound: a MissingWeightsError, not huggingface_hub's error."""
    with pytest.raises(MissingWeightsError) as err:
        load_openclip_encoder("hf-hub:s2i-test/absent", None)
    assert "Repository Not Found" in str(err.value)
    assert "HF_HUB_OFFLINE=1" in str(err.value)
    with pytest.raises(MissingWeightsError) as err:
        load_unclip_pipeline("s2i-test/absent-unclip")
    assert "hf download s2i-test/absent-unclip" in str(err.value) and "HF_HUB_OFFLINE=1" in str(err.value)


def test_online_without_network(cache: Path, no_network, clip_repo, unclip_repo, tiny_tag: str, tmp_path: Path) -> None:
    """The Hub unreachable: cached models load; missing ones raise MissingWeightsError at once
    (not after huggingface_hub's ~25 s of retries per file), never a raw network error."""
    lay_out_hub_cache(cache, CLIP_REPO, clip_repo, CLIP_COMMIT)
    pipeline_files = [p for p in unclip_repo if "/" in p or p == "model_index.json"]
    lay_out_hub_cache(cache, UNCLIP_REPO, unclip_repo, UNCLIP_COMMIT, pipeline_files, tree=True)
    _assert_tiny_clip(load_openclip_encoder(f"hf-hub:{CLIP_REPO}", None), clip_repo, tmp_path)
    _assert_tiny_clip(load_openclip_encoder(MODEL, tiny_tag), clip_repo, tmp_path)
    _assert_tiny_unclip(load_unclip_pipeline(UNCLIP_REPO), unclip_repo, tmp_path)

    empty = tmp_path / "empty-cache"
    calls = [
        lambda: load_openclip_encoder(f"hf-hub:{CLIP_REPO}", None, cache_dir=empty),
        lambda: load_openclip_encoder(MODEL, tiny_tag, cache_dir=empty),
        lambda: load_openclip_encoder("ViT-H-14", "laion2b_s32b_b79k", cache_dir=empty),
        lambda: load_unclip_pipeline(UNCLIP_REPO, cache_dir=empty),
    ]
    for call in calls:
        t0 = time.monotonic()
        with pytest.raises(MissingWeightsError) as err:
            call()
        assert time.monotonic() - t0 < 15, "huggingface_hub's retry loop was entered"
        msg = str(err.value)
        assert type(err.value) is MissingWeightsError
        assert NO_NETWORK in msg and "HF_HUB_OFFLINE=1" in msg and str(empty) in msg, msg
        assert "hf download" in msg
