#!/usr/bin/env bash
# Takes docs/live.jpg and docs/clip.jpg, the web page's Live view (candy on a fake camera showing
# scikit-image's coffee photo panning, stylized on the server) and a dropped clip halfway through,
# with its progress bar: the browser tests save them. Needs Chromium + ChromeDriver and pip install -e ".[dev]".
# Usage: bash docs/make_live_screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TEXTURE_NETS_LIVE_SCREENSHOT=docs/live.jpg TEXTURE_NETS_CLIP_SCREENSHOT=docs/clip.jpg \
    python -m pytest -q tests/test_live_browser.py -k "stylized_live and server or dropped_clip"
