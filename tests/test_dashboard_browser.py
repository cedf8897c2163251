"""The dashboard in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium) opens the Visdom page of a training run and finds the plots drawn and the samples shown.

Skipped where Chromium, ChromeDriver or Visdom's JavaScript files are absent (CI installs all three:
see .ci/run and scripts/provision_visdom_static.py). The `shared` test trains for real (Caffe VGG-19,
COCO photos, scikit-image's sample photos for validation) and keeps its screenshot; with
TEXTURE_NETS_SCREENSHOT=path it is copied there (docs/make_dashboard_screenshot.sh does this).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from texture_nets.cli import train_main

from .browser import make_driver, wait_for
from .conftest import SHARED_COCO, SHARED_STYLES, SHARED_VGG, as_argv, tiny_overrides
from .test_dashboard import expected_steps
from .visdom_server import visdom_server  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent
# What the page knows about its plots: Plotly keeps data and layout on each graph's div.
PLOTS_JS = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
  title: (el.layout && el.layout.title && (el.layout.title.text || el.layout.title)) || '',
  traces: (el.data || []).map(t => ({name: t.name, n: (t.x || []).length})),
  drawn: Array.from(el.querySelectorAll('.scatterlayer path.js-line'))
              .filter(p => /^M[^L]+L/.test(p.getAttribute('d') || '')).length,  // at least one segment
}));
"""
IMAGES_JS = "return Array.from(document.querySelectorAll('img')).map(i => [i.naturalWidth, i.naturalHeight]);"


def static_files_missing() -> bool:
    visdom = pytest.importorskip("visdom")
    static = Path(visdom.__file__).parent / "static"
    return not all((static / f).is_file() for f in ("js/plotly-plotly.min.js", "js/react-react.min.js",
                                                    "js/jquery.min.js", "version.built"))


def provision_static_files() -> None:
    """Install Visdom's page scripts with the command docs/install.md names (it needs npm), once."""
    if static_files_missing() and shutil.which("npm"):
        script = Path(__file__).resolve().parent.parent / "scripts" / "provision_visdom_static.py"
        subprocess.run([sys.executable, str(script)], check=False, timeout=600)


@pytest.fixture
def browser(tmp_path):
    provision_static_files()
    if static_files_missing():
        pytest.skip("Visdom's JavaScript files are missing and npm could not provide them: "
                    "python scripts/provision_visdom_static.py")
    driver = make_driver(tmp_path / "chrome", 1920, 1700)
    yield driver
    driver.quit()


def plot(driver, title: str) -> dict | None:
    return next((p for p in driver.execute_script(PLOTS_JS) if p["title"] == title), None)


def points(driver, title: str, trace: str) -> int:
    found = plot(driver, title)
    return next((t["n"] for t in found["traces"] if t["name"] == trace), 0) if found else 0


def assert_not_blank(path: Path) -> None:
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    assert pixels.shape[0] > 500 and pixels.std() > 20


def test_dashboard_page_draws_the_plots(browser, photos_dir, style_path, tmp_path, visdom_server):
    values = tiny_overrides(photos_dir, style_path, tmp_path / "ck", num_iterations=8, viz_every=2, val_every=4,
                            viz_server=visdom_server.server, viz_port=visdom_server.port, viz_env="browser")
    values.pop("device")
    assert train_main(as_argv(values) + ["--viz"]) == 0
    browser.get(f"{visdom_server.server}:{visdom_server.port}/env/browser")
    titles = {"total loss", "style loss", "content loss", "style loss per layer", "total variation of the output",
              "learning rate", "throughput"}
    wait_for(lambda: titles <= {p["title"] for p in browser.execute_script(PLOTS_JS) if p["drawn"]}, 60,
             "every plot drawn")
    total = plot(browser, "total loss")
    assert {t["name"]: t["n"] for t in total["traces"]} == {"train": 4, "validation": 2}  # steps 2,4,6,8; 4,8
    assert total["drawn"] == 2  # two SVG lines actually rendered
    assert wait_for(lambda: [s for s in browser.execute_script(IMAGES_JS) if s[0] > 100], 30, "the samples image")
    browser.save_screenshot(str(tmp_path / "dashboard.png"))
    assert_not_blank(tmp_path / "dashboard.png")


def skimage_photos(folder: Path) -> Path:
    """scikit-image's sample photos as files: the validation photos of the real run."""
    data = pytest.importorskip("skimage.data")
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
    return folder


@pytest.mark.shared
def test_live_dashboard_of_a_real_run(browser, tmp_path, visdom_server):
    steps = int(os.environ.get("TEXTURE_NETS_SCREENSHOT_STEPS", "40"))
    env = "mosaic_live"
    command = [sys.executable, str(ROOT / "train.py"), "--data_dir", str(SHARED_COCO / "train2017"),
               "--texture", str(SHARED_STYLES / "mosaic.jpg"), "--vgg_weights", str(SHARED_VGG),
               "--val_dir", str(skimage_photos(tmp_path / "val")), "--config", "cpu_demo",
               "--num_iterations", str(steps), "--val_every", str(max(steps // 4, 1)), "--viz_every", "2",
               "--checkpoint_dir", str(tmp_path / "ck"), "--viz", "--viz_server", visdom_server.server,
               "--viz_port", str(visdom_server.port), "--viz_env", env, "--num_workers", "1"]
    run = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(run.stdout), daemon=True)
    reader.start()
    try:  # the page opens an environment that exists (else it shows 'main'), then must grow by itself
        wait_for(lambda: run.poll() is not None or "total" in visdom_server.windows(env), 300, "the first point")
        browser.get(f"{visdom_server.server}:{visdom_server.port}/env/{env}")
        first = wait_for(lambda: points(browser, "total loss", "train"), 60, "the first point in the page")
        wait_for(lambda: points(browser, "total loss", "train") > first, 300, "a new point pushed to the open page")
        assert run.poll() is None, "the page should see the plots grow while the run is still going"
        run.wait(1800)
    finally:
        if run.poll() is None:
            run.kill()
    reader.join(10)
    assert run.returncode == 0, "".join(output)[-3000:]
    expected = len(expected_steps(0, steps, viz_every=2, val_every=max(steps // 4, 1)))
    wait_for(lambda: points(browser, "total loss", "train") == expected, 60, f"all {expected} points live")
    wait_for(lambda: [s for s in browser.execute_script(IMAGES_JS) if s[0] >= 5 * 128], 60, "the samples")
    time.sleep(1)  # let the last redraw settle before the picture
    shot = tmp_path / "dashboard.png"
    browser.save_screenshot(str(shot))
    assert_not_blank(shot)
    if os.environ.get("TEXTURE_NETS_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["TEXTURE_NETS_SCREENSHOT"])
