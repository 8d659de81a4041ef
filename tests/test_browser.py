"""The explorer in a real browser: JupyterLab (a subprocess on 127.0.0.1, a random free port,
a token made here) and headless Chromium driven by Playwright run every cell of
``notebooks/explore.ipynb``; the explorer's generated image (an ipywidgets ``Image``: an
``<img>`` whose ``src`` is a blob URL of PNG bytes) appears; dragging the volume slider, then
changing the seed and pressing **Generate**, each replaces it with different PNG bytes.
Screenshots go to this test's ``tmp_path`` and ``build/test-artifacts/``; the explorer's one is
copied to ``docs/explorer.png``.

Needs the system Chromium and the Python Playwright client -- ``scripts/install_browser.sh``
installs both (Debian ``chromium``, pinned ``playwright``; it never runs ``playwright install``);
skipped with that hint when either is missing. Slow (a server, a kernel, the models): ``slow``.

The notebook's defaults load the nbval smoke run (``build/nbval``). ``make test`` runs
``pytest tests`` *before* nbval builds it, so the session fixture ``smoke_run`` (conftest)
builds it when it is missing.

Nothing in the repository is left changed: JupyterLab's autosave is off (settings in a temp
dir), the notebook's bytes are checked and restored, and a ``.ipynb_checkpoints`` folder
created by the server is removed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from s2i.paths import repo_root

pytestmark = pytest.mark.slow

ROOT = repo_root()
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK = NOTEBOOKS / "explore.ipynb"
NBVAL = ROOT / "build" / "nbval"
ARTIFACTS = ROOT / "build" / "test-artifacts"
DOCS_SHOT = ROOT / "docs" / "explorer.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL_HINT = "run scripts/install_browser.sh (Debian chromium + the pinned playwright)"

T_SERVER = 120  # s: JupyterLab answering
T_FIRST = 300  # s: the page, the kernel, every cell including the first generation
T_UPDATE = 180  # s: one regeneration after a control changed


def _missing_browser() -> str | None:
    if not CHROMIUM.exists():
        return f"no {CHROMIUM}: {INSTALL_HINT}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"the playwright package is not installed: {INSTALL_HINT}"
    return None


@pytest.fixture(scope="session")
def browser_deps():
    why = _missing_browser()
    if why:
        pytest.skip(why)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    """JupyterLab user settings for the test: no autosave (the source notebook stays
    output-free), no news/update notifications, every cell in the DOM (no windowing)."""
    for plugin, values in {
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        p = settings_dir / f"{plugin}.jupyterlab-settings"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(values))


@pytest.fixture
def lab(tmp_path, browser_deps, smoke_run):
    """A JupyterLab server on 127.0.0.1 (loopback only) with a fresh token; shut down cleanly."""
    port, token = _free_port(), secrets.token_hex(24)
    jdir = tmp_path / "jupyter"
    _write_settings(jdir / "settings")
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(jdir / "config"),
        JUPYTER_DATA_DIR=str(jdir / "data"),
        JUPYTER_RUNTIME_DIR=str(jdir / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(jdir / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(jdir / "workspaces"),
        IPYTHONDIR=str(jdir / "ipython"),
        S2I_ROOT=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.pop("JUPYTER_TOKEN", None)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.open_browser=False",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={NOTEBOOKS}",
        "--ServerApp.allow_remote_access=False",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    nb_bytes = NOTEBOOK.read_bytes()
    had_checkpoints = (NOTEBOOKS / ".ipynb_checkpoints").exists()
    log = open(tmp_path / "jupyterlab.log", "wb")
    proc = subprocess.Popen(cmd, cwd=NOTEBOOKS, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + T_SERVER
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited ({proc.returncode}):\n" + (tmp_path / "jupyterlab.log").read_text()[-3000:]
                )
            try:
                req = urllib.request.Request(f"{base}/api/status", headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"JupyterLab did not answer on {base} within {T_SERVER} s")
            time.sleep(1)
        yield dict(base=base, token=token, log=tmp_path / "jupyterlab.log")
    finally:
        try:  # clean shutdown (kernels too) through the API, then make sure
            req = urllib.request.Request(
                f"{base}/api/shutdown", method="POST", headers={"Authorization": f"token {token}"}
            )
            urllib.request.urlopen(req, timeout=10).close()
        except OSError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        changed = NOTEBOOK.read_bytes() != nb_bytes
        if changed:
            NOTEBOOK.write_bytes(nb_bytes)
        if not had_checkpoints:
            shutil.rmtree(NOTEBOOKS / ".ipynb_checkpoints", ignore_errors=True)
        assert not changed, "the browser session modified notebooks/explore.ipynb (restored)"


# JS run in the page --------------------------------------------------------------------------
_STATE = """() => {
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-InputArea-prompt')].map(e => e.textContent);
  const errs = [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
      .map(e => e.textContent).filter(t => /Traceback|Error:/.test(t));
  const outs = [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.textContent).join('\\n');
  const img = document.querySelector('img.s2i-explorer-images');
  return {busy: prompts.some(t => t.includes('*')), ran: prompts.filter(t => /\\[\\d+\\]/.test(t)).length,
          errors: errs, done: outs.includes('louder changed the images:'), src: img ? img.src : null,
          status: (document.querySelector('.s2i-explorer-status') || {}).textContent || null};
}"""

_IMAGE_BYTES = """async () => {
  const img = document.querySelector('img.s2i-explorer-images');
  const buf = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let s = ''; for (const b of buf) s += String.fromCharCode(b);
  return {src: img.src, b64: btoa(s), w: img.naturalWidth, h: img.naturalHeight};
}"""


_KERNEL_IDLE = """() => /Python 3[^|]*\\|\\s*Idle/.test(
    (document.querySelector('.jp-StatusBar-Widget') || {}).textContent || '')"""


def _wait_state(page, cond, timeout_s: float, what: str) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        dialog = page.locator(".jp-Dialog .jp-mod-accept")
        if dialog.count():  # e.g. "Select Kernel" (the notebook's python3 is preselected): accept it
            dialog.first.click()
        st = page.evaluate(_STATE)
        if st["errors"]:
            raise AssertionError(
                f"a notebook cell failed while waiting for {what}:\n" + "\n".join(st["errors"])[-3000:]
            )
        if cond(st):
            return st
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}; last state {st}")
        page.wait_for_timeout(1000)


def _image(page) -> dict:
    d = page.evaluate(_IMAGE_BYTES)
    png = base64.b64decode(d["b64"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "the explorer's image is not a PNG"
    return dict(src=d["src"], png=png, size=(d["w"], d["h"]))


def _wait_new_image(page, old: dict, timeout_s: float, what: str) -> dict:
    _wait_state(
        page, lambda s: s["src"] and s["src"] != old["src"] and (s["status"] or "").startswith("done"), timeout_s, what
    )
    return _image(page)


def test_explorer_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(60_000)
        try:
            # 1. open the notebook; run every cell from the menu (Run -> Run All Cells)
            page.goto(f"{lab['base']}/lab/tree/explore.ipynb?token={lab['token']}", timeout=T_SERVER * 1000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=T_SERVER * 1000)
            # the kernel must be connected first: "Run All" without one opens a "Select Kernel" dialog
            page.wait_for_function(_KERNEL_IDLE, timeout=T_SERVER * 1000)
            page.locator(".jp-Notebook .jp-Cell").first.click()
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).first.click()
            # 2. wait for the kernel, every cell, and the explorer's first image
            _wait_state(page, lambda s: s["done"] and not s["busy"] and s["src"], T_FIRST, "all cells + the explorer")
            first = _image(page)
            assert first["size"][0] > 0 and first["size"][1] > 0
            page.screenshot(path=str(tmp_path / "lab_after_run_all.png"))
            # 3. drag the volume slider to the right (continuous_update=False: one update on release)
            handle = page.locator(".s2i-explorer-volume .noUi-handle").first
            handle.scroll_into_view_if_needed()
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2, steps=8)
            page.mouse.up()
            louder = _wait_new_image(page, first, T_UPDATE, "a new image after the volume slider moved")
            assert louder["png"] != first["png"], "moving the volume slider did not change the image"
            # 4. untick auto, change the seed, press Generate
            page.locator(".s2i-explorer-auto input[type=checkbox]").first.uncheck()
            seed = page.locator(".s2i-explorer-seed input").first
            seed.fill("7")
            seed.press("Enter")
            page.wait_for_timeout(1500)
            assert page.evaluate(_STATE)["src"] == louder["src"], "the seed regenerated with auto off"
            page.locator("button.s2i-explorer-generate").first.click()
            reseeded = _wait_new_image(page, louder, T_UPDATE, "a new image after Generate")
            assert reseeded["png"] != louder["png"], "Generate with another seed did not change the image"
            assert "seed 7" in page.evaluate(_STATE)["status"]
            # 5. screenshots
            widget = page.locator(".s2i-explorer").first
            widget.scroll_into_view_if_needed()
            shot = tmp_path / "explorer.png"
            widget.screenshot(path=str(shot))
            page.screenshot(path=str(tmp_path / "lab.png"))
            # docs/explorer.png (the README's picture) only when asked, so a test run never
            # leaves a modified tracked file: S2I_UPDATE_SCREENSHOT=1 pytest tests/test_browser.py
            dsts = [ARTIFACTS / "explorer.png"] + ([DOCS_SHOT] if os.environ.get("S2I_UPDATE_SCREENSHOT") else [])
            for dst in dsts:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, dst)
            shutil.copyfile(tmp_path / "lab.png", ARTIFACTS / "explorer_lab.png")
        except BaseException:
            try:
                page.screenshot(path=str(ARTIFACTS / "explorer_failure.png"))
                shutil.copyfile(lab["log"], ARTIFACTS / "explorer_failure_jupyterlab.log")
            except Exception:
                pass
            raise
        finally:
            browser.close()
