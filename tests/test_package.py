"""What the package carries for a first run: the shipped styles and a sample photo inside it, so an
installed wheel stylizes by name from any folder (`stylize.py --model mosaic` with no photo), and the
web app's page."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from texture_nets.cli import stylize_main
from texture_nets.core.checkpoint import SHIPPED_DIR
from texture_nets.inference.engine import SAMPLE_PHOTO

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "texture_nets")  # what building the wheel reads


def test_the_sample_photo_is_a_small_real_photo_with_its_licence():
    with Image.open(SAMPLE_PHOTO) as image:
        assert image.format == "JPEG" and 256 <= max(image.size) <= 640
    note = (SAMPLE_PHOTO.parent / "README.md").read_text(encoding="utf-8")
    assert SAMPLE_PHOTO.name in note and "CC0" in note and "skimage.data.chelsea" in note


def test_stylize_without_input_stylizes_the_sample_photo_here(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here: mosaic.pt is the shipped style, found by name
    assert stylize_main(["--model", "mosaic.pt"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "no --input: stylized the sample photo chelsea.jpg → chelsea_mosaic.png"]
    written = tmp_path / "chelsea_mosaic.png"
    with Image.open(written) as out, Image.open(SAMPLE_PHOTO) as photo:
        assert out.format == "PNG" and out.size == photo.size
    before = written.read_bytes()
    assert stylize_main(["--model", "mosaic", "--seed", "1"]) == 0  # never over the earlier picture
    assert capsys.readouterr().out.splitlines() == [
        "no --input: stylized the sample photo chelsea.jpg → chelsea_mosaic_1.png"]
    assert written.read_bytes() == before and (tmp_path / "chelsea_mosaic_1.png").is_file()
    assert stylize_main(["--model", "mosaic", "--output", "cat.jpg", "--size", "64"]) == 0  # --output is obeyed
    assert capsys.readouterr().out.strip() == "no --input: stylized the sample photo chelsea.jpg → cat.jpg"
    with Image.open(tmp_path / "cat.jpg") as out:
        assert out.format == "JPEG" and max(out.size) == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.jpg", "chelsea_mosaic.png", "chelsea_mosaic_1.png"]


def wheel_tools_missing() -> str | None:
    """Why a wheel cannot be built here without the network (None: it can)."""
    try:
        import setuptools  # --no-build-isolation builds with this environment's setuptools
    except ImportError:
        return "setuptools is not installed"
    version = tuple(int(part) for part in setuptools.__version__.split(".")[:2] if part.isdigit())
    if version < (70, 1) and importlib.util.find_spec("wheel") is None:  # bdist_wheel moved into setuptools 70.1
        return f"setuptools {setuptools.__version__} builds wheels only with the 'wheel' package, not installed"
    done = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
    return None if done.returncode == 0 else f"pip is unavailable ({done.stderr.strip()[:200]})"


INSTALLED_CHECK = """
import importlib.resources, sys
import texture_nets
from texture_nets.core.checkpoint import SHIPPED_DIR, resolve_model
from texture_nets.inference.engine import SAMPLE_PHOTO
package = importlib.resources.files("texture_nets")
assert str(package).startswith(sys.prefix), package      # the wheel's copy, not the checkout
print(resolve_model("mosaic"))
print(resolve_model("candy.pt"))
print(SAMPLE_PHOTO if SAMPLE_PHOTO.is_file() else "missing")
index = importlib.resources.files("texture_nets.web") / "static" / "index.html"
print(index if index.is_file() else "missing")
try:  # the web app (an optional extra) serves the page and lists the shipped styles
    from fastapi.testclient import TestClient
except ImportError:
    print("web: no fastapi")
else:
    from texture_nets.web import create_app
    client = TestClient(create_app())
    page, script = client.get("/"), client.get("/static/app.js")
    shipped = sorted(m["name"] for m in client.get("/api/models").json()["models"] if m["shipped"])
    print("web:", page.status_code, page.text == index.read_text(encoding="utf-8"), script.status_code,
          ",".join(shipped))
"""


@pytest.mark.slow
def test_an_installed_wheel_finds_its_styles_sample_and_web_page_from_any_folder(tmp_path):
    """Build a wheel of the checkout (no network: --no-build-isolation, --no-deps), install it alone into a
    fresh virtual environment that sees this one's dependencies but not the checkout, and use it from an
    empty folder. About 15-25 s."""
    reason = wheel_tools_missing()
    if reason:
        pytest.skip(f"cannot build a wheel offline: {reason}")
    started = time.monotonic()
    source, wheels, venv, elsewhere = (tmp_path / name for name in ("src", "wheels", "venv", "elsewhere"))
    source.mkdir()
    for name in SOURCES:  # a copy: building in the checkout would write build/ and egg-info there
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(wheels)], tmp_path)
    (wheel,) = wheels.glob("texture_nets-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"texture_nets/styles/{p.name}" for p in SHIPPED_DIR.glob("*.pt")} <= names
    assert {"texture_nets/samples/chelsea.jpg", "texture_nets/web/static/index.html",
            "texture_nets/cli/__init__.py", "texture_nets/cli/download.py"} <= names
    assert not any(name.startswith(("checkpoints/", "tests/")) for name in names)

    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    purelib = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       tmp_path).strip())
    # this environment's dependencies (torch, ...), as a plain path: its .pth files (the editable install
    # of the checkout) are not read, so `texture_nets` can only come from the wheel
    (purelib / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)], tmp_path)

    elsewhere.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("PYTHONPATH", None)
    found = run([str(python), "-c", INSTALLED_CHECK], elsewhere, env).splitlines()
    installed = purelib / "texture_nets"
    assert found[:4] == [str(installed / "styles" / "mosaic.pt"), str(installed / "styles" / "candy.pt"),
                         str(installed / "samples" / "chelsea.jpg"), str(installed / "web" / "static" / "index.html")]
    styles = ",".join(sorted(p.stem for p in SHIPPED_DIR.glob("*.pt")))
    assert found[4] in ("web: no fastapi", f"web: 200 True 200 {styles}")
    out = run([str(venv / "bin" / "texture-nets"), "stylize", "--model", "candy", "--size", "96"], elsewhere, env)
    assert out.strip() == "no --input: stylized the sample photo chelsea.jpg → chelsea_candy.png"
    with Image.open(elsewhere / "chelsea_candy.png") as picture:
        assert max(picture.size) == 96
    print(f"wheel built, installed and used in {time.monotonic() - started:.1f} s")


def run(command: list[str], cwd: Path, env: dict | None = None) -> str:
    """A command's stdout; its stderr in the failure message."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout
