"""The web page in a real browser (headless Chromium via Selenium): upload a photo, pick a style,
move the noise slider, get the stylized picture; start a tiny training job and watch it finish.

The screenshot test uses the shipped styles and scikit-image's chelsea photo; with
TEXTURE_NETS_SCREENSHOT=path the picture is copied there (docs/make_web_screenshot.sh)."""

from __future__ import annotations

import base64
import io
import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from texture_nets.training.config import make_config  # noqa: E402
from texture_nets.training.run import run_training  # noqa: E402
from texture_nets.web import WebConfig  # noqa: E402

from .browser import make_driver, wait_for  # noqa: E402
from .conftest import smooth_image, stripes_image, tiny_overrides  # noqa: E402
from .live_server import LiveServer  # noqa: E402
from .test_web import TINY_TRAINING  # noqa: E402

RESULT_JS = """const img = document.getElementById('result');
if (!img.complete || !img.naturalWidth) return null;
const canvas = document.createElement('canvas');
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
canvas.getContext('2d').drawImage(img, 0, 0);
return [img.dataset.model, img.dataset.noise, canvas.toDataURL('image/png')];"""


def decode(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB"))


@pytest.fixture
def site(tmp_path):
    """A server with one tiny trained model and a data root holding a photo folder."""
    photos = tmp_path / "data" / "photos"
    photos.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        smooth_image(rng, 48, 40).save(photos / f"p{i}.png")
    stripes_image(48).save(tmp_path / "stripes.png")
    run_training(make_config({}, tiny_overrides(photos, tmp_path / "stripes.png", tmp_path / "ck", name="stripes",
                                                num_iterations=3)), log=lambda *_: None)
    config = WebConfig(checkpoint_dir=str(tmp_path / "ck"), shipped=False, data_root=str(tmp_path / "data"),
                       vgg_weights="random", engine="torch", train_defaults=TINY_TRAINING)
    with LiveServer(config) as server:
        yield server, tmp_path


@pytest.fixture
def browser(tmp_path):
    driver = make_driver(tmp_path / "chrome", 1400, 1200)
    yield driver
    driver.quit()


def test_stylize_and_train_in_the_page(site, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    server, root = site
    photo = root / "upload.png"
    smooth_image(np.random.default_rng(7), 90, 60).save(photo)
    browser.get(server.url)
    card = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".card[data-model='stripes']"), 30, "the gallery")[0]
    wait_for(lambda: browser.execute_script("return arguments[0].querySelector('img').naturalWidth", card), 30,
             "the thumbnail")
    browser.find_element(By.ID, "photo").send_keys(str(photo))
    card.click()
    model, noise, first = wait_for(lambda: browser.execute_script(RESULT_JS), 60, "the stylized picture")
    picture = decode(first)
    assert model == "stripes" and noise == "0.1" and picture.shape == (341, 512, 3)  # the size menu's 512 px
    resized = np.asarray(Image.open(photo).resize((512, 341)), dtype=float)
    assert np.abs(picture.astype(float) - resized).mean() > 5  # stylized, not the photo
    slider = browser.find_element(By.ID, "noise")
    slider.send_keys(Keys.ARROW_RIGHT * 10)  # the keyboard moves a range input like a drag does: 0.1 → 0.6
    moved = wait_for(lambda: (r := browser.execute_script(RESULT_JS)) and r[1] != "0.1" and r, 60, "a new picture")
    assert moved[1] == "0.6" and not np.array_equal(decode(moved[2]), picture)
    link = browser.find_element(By.ID, "download")
    assert link.get_attribute("download") == "upload_stripes.png" and link.get_attribute("href").startswith("blob:")

    # the exact method, streamed: progress, then the optimised picture in place of the network's
    browser.find_element(By.CSS_SELECTOR, "#optimize_box summary").click()
    browser.find_element(By.ID, "opt_style").send_keys(str(root / "stripes.png"))
    for field, value in (("opt_steps", "3"), ("opt_size", "45")):
        element = browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    browser.find_element(By.ID, "optimize").click()
    done = wait_for(lambda: (r := browser.execute_script(RESULT_JS)) and r[0] == "optimisation"
                    and browser.find_element(By.ID, "result_caption").text == "optimisation" and r, 120,
                    "the optimised picture")
    assert decode(done[2]).shape == (30, 45, 3)
    assert browser.find_element(By.ID, "opt_progress").get_attribute("value") != "0"

    # a tiny training job, started and watched from the page
    browser.find_element(By.ID, "data_dir").send_keys("photos")
    wait_for(lambda: browser.find_element(By.ID, "data_dir_status").text == "6 images", 30, "the folder check")
    browser.find_element(By.ID, "style").send_keys(str(root / "stripes.png"))
    browser.find_element(By.ID, "name").send_keys("fromweb")
    for field, value in (("steps", "6"), ("image_size", "32")):
        element = browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    browser.find_element(By.ID, "start").click()
    wait_for(lambda: browser.find_element(By.ID, "job_state").get_attribute("data-state") == "done", 120,
             "the job to finish")
    assert browser.find_element(By.ID, "job_progress").get_attribute("value") == "6"
    assert "validation" in browser.find_element(By.ID, "job_losses").text
    wait_for(lambda: browser.execute_script("return document.getElementById('job_sample').naturalWidth"), 30,
             "the sample image")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".card[data-model='fromweb']"), 30,
             "the new style in the gallery")


VIDEO_JS = """const video = document.getElementById('result_video');
if (video.hidden || video.readyState < 2 || !video.videoWidth) return null;
const canvas = document.createElement('canvas');
canvas.width = video.videoWidth; canvas.height = video.videoHeight;
canvas.getContext('2d').drawImage(video, 0, 0);
return [video.dataset.model, document.getElementById('result').hidden, canvas.toDataURL('image/png')];"""


def test_a_clip_in_the_page_comes_back_as_a_playing_clip(site, browser, tmp_path):
    """A short clip dropped on the page goes to POST /api/stylize_video and comes back as a clip the
    page plays in place of the picture, at the server's largest clip size when the menu asks more."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from .test_video import moving_frames, write_clip
    server, root = site
    clip = write_clip(root / "clip.mp4", moving_frames(6, 64, 48), fps=6)
    browser.get(server.url)
    card = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".card[data-model='stripes']"), 30, "the gallery")[0]
    Select(browser.find_element(By.ID, "size")).select_by_value("1024")  # above the server's 640 for clips
    browser.find_element(By.ID, "photo").send_keys(str(clip))
    card.click()
    model, picture_hidden, frame = wait_for(lambda: browser.execute_script(VIDEO_JS), 120, "the stylized clip")
    assert model == "stripes" and picture_hidden
    first = decode(frame)
    assert first.shape == (480, 640, 3) and first.std() > 2  # a picture at the clamped size, not a blank
    link = browser.find_element(By.ID, "download")
    assert link.get_attribute("download") == "clip_stripes.webm" and link.get_attribute("href").startswith("blob:")
    wait_for(lambda: browser.execute_script("return document.getElementById('result_video').currentTime > 0"), 30,
             "the clip to play")
    assert "6 frames" in browser.find_element(By.ID, "stylize_status").text


def test_screenshot_with_the_shipped_styles(browser, tmp_path):
    """The page as a user sees it: scikit-image's chelsea in ulyanov_starry (the README's picture)."""
    from selenium.webdriver.common.by import By
    skimage_data = pytest.importorskip("skimage.data")
    photo = tmp_path / "chelsea.png"
    Image.fromarray(skimage_data.chelsea()).save(photo)
    config = WebConfig(checkpoint_dir=str(tmp_path / "ck"), data_root=str(tmp_path), engine="torch")
    with LiveServer(config) as server:
        browser.get(server.url)
        wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".card")) >= 10, 60, "the shipped styles")
        browser.find_element(By.ID, "photo").send_keys(str(photo))
        browser.find_element(By.CSS_SELECTOR, ".card[data-model='ulyanov_starry']").click()
        model, _, data = wait_for(lambda: browser.execute_script(RESULT_JS), 60, "the stylized picture")
        assert model == "ulyanov_starry" and decode(data).shape == (341, 512, 3)
        wait_for(lambda: browser.execute_script(
            "return Array.from(document.querySelectorAll('.card img')).every(i => i.naturalWidth > 0)"), 60,
            "every thumbnail")
        time.sleep(0.5)
        shot = tmp_path / "web.png"
        browser.save_screenshot(str(shot))
    image = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert image.shape[0] > 600 and image.std() > 20
    if os.environ.get("TEXTURE_NETS_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["TEXTURE_NETS_SCREENSHOT"])


def test_optimisation_stops_when_its_client_goes(tmp_path):
    """A client that closes the stream frees the (one) optimisation slot within a step or two, and a
    request while one runs is told so (409)."""
    import httpx
    photo, style = io.BytesIO(), io.BytesIO()
    smooth_image(np.random.default_rng(0), 64, 48).save(photo, format="PNG")
    stripes_image(48).save(style, format="PNG")
    files = [("file", ("p.png", photo.getvalue())), ("style", ("s.png", style.getvalue()))]
    with LiveServer(WebConfig(checkpoint_dir=str(tmp_path), vgg_weights="random", shipped=False)) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            with client.stream("POST", "/api/optimize", files=files, data={"steps": "1000", "size": "64"}) as long:
                assert '"step": 1' in next(long.iter_lines())
                busy = client.post("/api/optimize", files=files, data={"steps": "2", "size": "32"})
                assert busy.status_code == 409 and "running" in busy.json()["detail"]
            wait_for(lambda: client.post("/api/optimize", files=files, data={"steps": "2", "size": "32"}).status_code
                     == 200, 60, "the slot to be free again")
