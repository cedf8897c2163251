"""The page's Live view and clip progress in a real browser: headless Chromium with a fake camera
(a Y4M clip of a scikit-image photo moving, fake_camera.py) against the app under uvicorn, with
the shipped styles. With TEXTURE_NETS_LIVE_SCREENSHOT=path / TEXTURE_NETS_CLIP_SCREENSHOT=path the
views are saved there (docs/make_live_screenshots.sh)."""

from __future__ import annotations

import base64
import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("websockets")
pytest.importorskip("uvicorn")

from texture_nets.core.checkpoint import SHIPPED_DIR, load_generator  # noqa: E402
from texture_nets.inference.engine import Engine  # noqa: E402
from texture_nets.inference.options import StylizeOptions  # noqa: E402
from texture_nets.web import WebConfig  # noqa: E402
from texture_nets.web.live import browser_engine_installed  # noqa: E402

from .browser import make_driver, wait_for  # noqa: E402
from .fake_camera import CAMERA_FLAGS, camera_clip  # noqa: E402
from .live_server import LiveServer  # noqa: E402
from .test_video import moving_frames, write_clip  # noqa: E402

STYLE = "candy"
PICTURES_JS = """const canvas = document.createElement('canvas');
const camera = document.getElementById('live_camera'), out = document.getElementById('live_output');
canvas.width = out.width; canvas.height = out.height;
canvas.getContext('2d').drawImage(camera, 0, 0, out.width, out.height);
return [canvas.toDataURL('image/png'), out.toDataURL('image/png')];"""


def save_screenshot(element, path: str) -> None:
    """The element's picture at `path`, in the format its suffix names (docs keep JPEGs small)."""
    Image.open(io.BytesIO(element.screenshot_as_png)).convert("RGB").save(path, quality=88)


def palette(image: np.ndarray) -> np.ndarray:
    """A picture's colour statistics: each channel's mean and standard deviation."""
    return np.concatenate([image.mean(axis=(0, 1)), image.std(axis=(0, 1))])


def decode(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB"), np.float32)


@pytest.fixture
def camera_browser(tmp_path):
    """A Chromium whose camera shows a photo panning, at 320x240."""
    clip = camera_clip(tmp_path, 320, 240)
    driver = make_driver(tmp_path / "chrome", 1300, 1400,
                         extra=CAMERA_FLAGS + [f"--use-file-for-fake-video-capture={clip}"])
    yield driver
    driver.quit()


def server_for(tmp_path, **settings) -> LiveServer:
    return LiveServer(WebConfig(checkpoint_dir=str(tmp_path / "ck"), engine="auto", **settings))


def open_live(browser, server, way: str) -> None:
    """The page, the style chosen, the camera started the given way."""
    from selenium.webdriver.common.by import By
    browser.get(server.url + "/#live")
    card = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f".card[data-model='{STYLE}']"), 60, "the gallery")
    card[0].click()
    browser.execute_script(f"document.getElementById('live_way').value = '{way}';")
    browser.find_element(By.ID, "live_start").click()


def stats(browser) -> dict:
    return browser.execute_script("return Object.assign({}, document.getElementById('live_stats').dataset, "
                                  "{status: document.getElementById('live_status').textContent});")


@pytest.mark.parametrize("way", ["server", "browser"])
def test_the_camera_is_stylized_live_in_the_styles_palette(camera_browser, tmp_path, way):
    """Stylized frames arrive, differ from the camera's, have the colours the engine gives the same
    camera picture, and the page reports frames/s and latency."""
    if way == "browser" and not browser_engine_installed():
        pytest.skip("onnxruntime-web is not installed (python scripts/provision_web_static.py)")
    with server_for(tmp_path) as server:
        open_live(camera_browser, server, way)
        wait_for(lambda: int(stats(camera_browser).get("frames", 0)) >= 8, 180,
                 f"stylized frames ({stats(camera_browser)})")
        camera, stylized = (decode(url) for url in camera_browser.execute_script(PICTURES_JS))
        reported = stats(camera_browser)
        if way == "server" and os.environ.get("TEXTURE_NETS_LIVE_SCREENSHOT"):  # in its steady state
            wait_for(lambda: int(stats(camera_browser)["frames"]) >= 60, 120, "a minute's worth of frames")
            save_screenshot(camera_browser.find_element("id", "live"), os.environ["TEXTURE_NETS_LIVE_SCREENSHOT"])
    assert stylized.shape == (240, 320, 3) and reported["way"] == way
    assert float(reported["fps"]) > 0 and float(reported["latency"]) > 0
    engine = Engine(load_generator(SHIPPED_DIR / f"{STYLE}.pt"), StylizeOptions(seed=0))
    with torch.inference_mode():
        expected = engine.stylize(torch.from_numpy(camera / 255).permute(2, 0, 1)[None].float())
    expected = expected[0].permute(1, 2, 0).numpy() * 255
    # the camera moves on between the two grabs: compare colour statistics, not pixels
    assert np.abs(stylized - camera).mean() > 20  # stylized, not the camera's picture
    assert np.abs(palette(stylized) - palette(expected)).max() < 12 < np.abs(palette(camera) - palette(expected)).max()


DOWNLOAD_JS = """const done = arguments[arguments.length - 1], link = document.getElementById('live_download');
fetch(link.href).then((r) => r.blob()).then((blob) => {
  const reader = new FileReader(); reader.onload = () => done([link.download, reader.result]);
  reader.readAsDataURL(blob); });"""


def test_snapshot_and_recording_download_the_stylized_view(camera_browser, tmp_path):
    """Snapshot offers the stylized frame as a PNG of the view's size; Record, stopped after a few
    seconds, offers a WebM clip of the stylized view."""
    av = pytest.importorskip("av")
    with server_for(tmp_path) as server:
        open_live(camera_browser, server, "server")
        wait_for(lambda: int(stats(camera_browser).get("frames", 0)) >= 3, 90, "stylized frames")
        camera_browser.find_element("id", "live_snapshot").click()
        wait_for(lambda: camera_browser.find_element("id", "live_download").get_attribute("download"), 10, "a snapshot")
        name, snapshot = camera_browser.execute_async_script(DOWNLOAD_JS)
        camera_browser.find_element("id", "live_record").click()
        wait_for(lambda: int(stats(camera_browser)["frames"]) >= 20, 60, "frames to record")
        camera_browser.find_element("id", "live_record").click()  # stop
        wait_for(lambda: camera_browser.find_element("id", "live_download").get_attribute("download").endswith(".webm"),
                 10, "the recording")
        clip_name, clip = camera_browser.execute_async_script(DOWNLOAD_JS)
    assert name == f"{STYLE}_live.png" and decode(snapshot).shape == (240, 320, 3)
    assert clip_name == f"{STYLE}_live.webm"
    with av.open(io.BytesIO(base64.b64decode(clip.split(",", 1)[1]))) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) >= 5 and frames[-1].shape == (240, 320, 3)
    assert np.abs(palette(frames[-1].astype(np.float32)) - palette(decode(snapshot))).max() < 15  # the stylized view


def test_more_sessions_than_the_limit_get_the_message_and_closed_tabs_free_theirs(camera_browser, tmp_path):
    with server_for(tmp_path, max_live_sessions=1) as server:
        sessions = server.server.config.app.state.live
        open_live(camera_browser, server, "server")
        wait_for(lambda: int(stats(camera_browser).get("frames", 0)) >= 2, 90, "the first tab's frames")
        first = camera_browser.current_window_handle
        camera_browser.switch_to.new_window("tab")
        open_live(camera_browser, server, "server")
        message = wait_for(lambda: "live sessions" in (s := stats(camera_browser)["status"]) and s, 60, "the message")
        assert "all 1 live sessions of this server are in use" in message and sessions.open == 1
        camera_browser.close()  # the refused tab, then the live one
        camera_browser.switch_to.window(first)
        camera_browser.switch_to.new_window("tab")
        camera_browser.switch_to.window(first)
        camera_browser.close()
        wait_for(lambda: sessions.open == 0, 20, "the server to free the closed tab's session")


def drop_clip(browser, server, path) -> None:
    from selenium.webdriver.common.by import By
    browser.get(server.url)
    card = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f".card[data-model='{STYLE}']"), 60, "the gallery")
    card[0].click()
    browser.find_element(By.ID, "photo").send_keys(str(path))


def progress_of(browser) -> int:
    return int(browser.execute_script("return document.getElementById('clip_progress').dataset.frames || 0"))


def test_a_dropped_clip_shows_its_progress_and_downloads(camera_browser, tmp_path):
    av = pytest.importorskip("av")
    clip = write_clip(tmp_path / "walk.mp4", moving_frames(40, 160, 120), fps=10, audio=False)
    with server_for(tmp_path) as server:
        drop_clip(camera_browser, server, clip)
        seen = set()

        screenshot = os.environ.get("TEXTURE_NETS_CLIP_SCREENSHOT")

        def finished() -> bool:  # noting each progress the bar shows on the way
            nonlocal screenshot
            seen.add(progress := progress_of(camera_browser))
            if screenshot and 16 <= progress < 40:  # the clip view halfway
                save_screenshot(camera_browser.find_element("id", "stylize"), screenshot)
                screenshot = None
            return camera_browser.find_element("id", "stylize_status").text.startswith("done in")
        wait_for(finished, 180, "the stylized clip")
        status = camera_browser.find_element("id", "stylize_status").text
        data = camera_browser.execute_async_script("""const done = arguments[arguments.length - 1];
            fetch(document.getElementById('download').href).then((r) => r.blob()).then((blob) => {
              const reader = new FileReader(); reader.onload = () => done(reader.result);
              reader.readAsDataURL(blob); });""")
    assert len({n for n in seen if 0 < n < 40}) >= 2  # the bar moved through the clip, not only at its end
    assert status.startswith("done in") and "40 frames" in status
    with av.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))) as container:
        assert sum(1 for _ in container.decode(video=0)) == 40


def test_cancel_stops_the_servers_work(camera_browser, tmp_path):
    clip = write_clip(tmp_path / "long.mp4", moving_frames(150, 320, 240), fps=15, audio=False)
    with server_for(tmp_path, max_video_megapixels=1000) as server:
        queue = server.server.config.app.state.queue
        drop_clip(camera_browser, server, clip)
        wait_for(lambda: progress_of(camera_browser) >= 2, 120, "the clip's first frames")
        camera_browser.find_element("id", "clip_cancel").click()
        wait_for(lambda: camera_browser.find_element("id", "stylize_status").text == "cancelled", 10, "'cancelled'")
        wait_for(lambda: queue.running == 0, 20, "the server to stop the clip's work")
        assert progress_of(camera_browser) < 150
