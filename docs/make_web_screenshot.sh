#!/usr/bin/env bash
# Takes docs/web.png, the README's picture of the web app: the browser test opens the page in headless
# Chromium with the shipped styles and stylizes scikit-image's chelsea with ulyanov_starry.
# Needs Chromium + ChromeDriver and pip install -e ".[dev]". Usage: bash docs/make_web_screenshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TEXTURE_NETS_SCREENSHOT=docs/web.png python -m pytest -q tests/test_web_browser.py -k screenshot
