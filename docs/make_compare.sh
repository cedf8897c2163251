#!/usr/bin/env bash
# Makes docs/compare.jpg: the four styles of the Texture Networks paper (ulyanov_mosaic, pleades,
# ulyanov_starry, turner), our shipped checkpoint next to the paper's released generator, on three of
# scikit-image's sample photos (astronaut, chelsea, coffee), with the project's own commands:
#   ours:  python stylize.py --model <style> --input ... --output ... --size SIZE --seed 0
#   paper: benchmarks/ulyanov_t7.py on ../shared/peers/ulyanov2016_t7 (noise factor 1, seed 0, as
#          benchmarks/quality.py runs it), on the same photo at the same size
# Grid: one row per style × photo; columns photo | ours | paper, at the pictures' own pixels (no
# resampling, so crispness and artefacts show as they are). JPEG quality 90.
# Needs scikit-image and torchfile (pip install -e ".[docs]"; torchfile for the peer).
# Usage: bash docs/make_compare.sh [SIZE]   (SIZE: longer side of the photos, default 512; ≤ 590
# keeps the sheet within 1800 px; ~2 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-512}
STYLES="ulyanov_mosaic pleades ulyanov_starry turner"
PHOTOS="astronaut chelsea coffee"
PEERS=../shared/peers/ulyanov2016_t7/stylization_models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python - "$tmp" "$SIZE" $PHOTOS <<'PY'
import sys
from PIL import Image
from skimage import data
from texture_nets.stylize import resize_longer_side
tmp, size, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
for name in names:  # the photo at SIZE once, so ours and the paper's see exactly the same pixels
    resize_longer_side(Image.fromarray(getattr(data, name)()).convert("RGB"), size).save(f"{tmp}/{name}.png")
PY
for style in $STYLES; do
  inputs=()
  for photo in $PHOTOS; do inputs+=("$tmp/$photo.png"); done
  python stylize.py --model "$style" --input "${inputs[@]}" --output "$tmp/ours_$style" --seed 0
done
python - "$tmp" "$PEERS" "$STYLES" "$PHOTOS" <<'PY'
import sys
sys.path.insert(0, "benchmarks")
from ulyanov_t7 import UlyanovT7
from texture_nets.data import tensor_to_image
from texture_nets.stylize import photo_batch
tmp, peers, styles, photos = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
files = {"ulyanov_mosaic": "mosaic_style.t7", "pleades": "pleades_style.t7",
         "ulyanov_starry": "starry_style.t7", "turner": "turner_style.t7"}
for style in styles:
    network = UlyanovT7(f"{peers}/{files[style]}")
    for photo in photos:
        tensor_to_image(network(photo_batch(f"{tmp}/{photo}.png"), seed=0)[0]).save(f"{tmp}/paper_{style}_{photo}.png")
PY
python docs/compare_sheet.py "$tmp" docs/compare.jpg "$STYLES" "$PHOTOS"
