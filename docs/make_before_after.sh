#!/usr/bin/env bash
# Makes docs/before_after.jpg for the README, with the project's own commands:
#   1. a short CPU training run on the COCO photos in ../shared with the real VGG-19 weights,
#   2. stylize.py on scikit-image's "astronaut" and "coffee" sample photos (pip install -e ".[docs]"),
#   3. the photo and its stylization side by side.
# Usage: bash docs/make_before_after.sh [checkpoint_dir]   (~20 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=../shared
CK=${1:-runs/cpu_demo}
if [ ! -f "$CK/mosaic.pt" ]; then
  python train.py --config cpu_demo --data_dir "$SHARED/data/coco/train2017" \
    --texture "$SHARED/data/styles/mosaic.jpg" --vgg_weights "$SHARED/vgg19/vgg19_caffe_features_fp16.pth" \
    --checkpoint_dir "$CK"
fi
tmp=$(mktemp -d)
python - "$tmp" <<'PY'
import sys
from PIL import Image
from skimage import data
Image.fromarray(data.astronaut()).save(f"{sys.argv[1]}/astronaut.png")
Image.fromarray(data.coffee()).save(f"{sys.argv[1]}/coffee.png")
PY
python stylize.py --model "$CK/mosaic.pt" --input "$tmp/astronaut.png" "$tmp/coffee.png" --size 384 --output "$tmp/out"
python - "$tmp" docs/before_after.jpg <<'PY'
import sys
from PIL import Image
tmp, target = sys.argv[1:]
pairs = [(Image.open(f"{tmp}/{n}.png").convert("RGB"), Image.open(f"{tmp}/out/{n}.png")) for n in ("astronaut", "coffee")]
h = 320
tiles = [im.resize((round(im.width * h / im.height), h), Image.LANCZOS) for pair in pairs for im in pair]
sheet = Image.new("RGB", (sum(t.width for t in tiles) + 8 * (len(tiles) - 1), h), "white")
x = 0
for t in tiles:
    sheet.paste(t, (x, 0)); x += t.width + 8
sheet.save(target, quality=88)
print(target)
PY
rm -rf "$tmp"
