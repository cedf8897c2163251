#!/usr/bin/env bash
# Makes docs/dashboard.png for the README: the browser test's screenshot of the live Visdom dashboard
# of a real CPU training run (COCO photos and Caffe VGG-19 from ../shared, mosaic style, scikit-image's
# sample photos as the validation photos). Needs Chromium + ChromeDriver and the provisioned Visdom
# page scripts (see the README's install). Usage: bash docs/make_dashboard_screenshot.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
export TEXTURE_NETS_SCREENSHOT=docs/dashboard.png TEXTURE_NETS_SCREENSHOT_STEPS=${1:-200}
pytest -q tests/test_dashboard_browser.py -k live_dashboard_of_a_real_run
python - <<'PY'
from PIL import Image  # the top of the page, where the plots and samples are; 8-bit palette keeps it small
shot = Image.open("docs/dashboard.png").convert("RGB")
shot.crop((0, 0, shot.width, min(shot.height, 1480))).quantize(256, dither=Image.Dither.NONE).save("docs/dashboard.png", optimize=True)
PY
ls -l docs/dashboard.png
