#!/usr/bin/env bash
# Makes the README's style-control pictures with the project's own commands, from scikit-image's
# "chelsea" sample photo at 320 px:
#   docs/control.jpg        photo | feed-forward network | Gatys et al.'s optimisation | a two-style blend
#                           (optimised) | colours kept (network, and optimisation)
#   docs/features.jpg       `texture-nets features`: strongest VGG-19 activation maps per layer
#   docs/features_gram.jpg  the Gram matrices of those layers as heat maps
# Needs scikit-image (pip install -e ".[docs]") and the VGG-19 weights (TEXTURE_NETS_VGG_WEIGHTS or
# --vgg_weights; default below: ../shared's). Usage: bash docs/make_control.sh [steps]
# The optimisations take most of the time: about 3 s a step each at 320 px on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-200}
export TEXTURE_NETS_VGG_WEIGHTS=${TEXTURE_NETS_VGG_WEIGHTS:-../shared/vgg19/vgg19_caffe_features_fp16.pth}
STYLES=../shared/data/styles
SIZE=320
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python -c "import sys; from PIL import Image; from skimage import data; Image.fromarray(data.chelsea()).save(sys.argv[1])" "$tmp/chelsea.png"
python stylize.py --model ulyanov_starry --input "$tmp/chelsea.png" --size $SIZE --output "$tmp/network.png"
python stylize.py --model ulyanov_starry --input "$tmp/chelsea.png" --size $SIZE --output "$tmp/network_colors.png" \
  --preserve_colors
python stylize.py --optimize --input "$tmp/chelsea.png" --style $STYLES/ulyanov_starry.jpg --size $SIZE \
  --steps "$STEPS" --output "$tmp/optimized.png"
python stylize.py --optimize --input "$tmp/chelsea.png" --style $STYLES/ulyanov_starry.jpg --style $STYLES/candy.jpg \
  --style_blend 0.5,0.5 --size $SIZE --steps "$STEPS" --output "$tmp/blend.png"
python stylize.py --optimize --input "$tmp/chelsea.png" --style $STYLES/ulyanov_starry.jpg --size $SIZE \
  --steps "$STEPS" --preserve_colors --output "$tmp/optimized_colors.png"
python -m texture_nets features --input "$tmp/chelsea.png" --size $SIZE --layers relu1_1,relu3_1,relu5_1 --top 6 \
  --output "$tmp/features.png"
python - "$tmp" "$STEPS" <<'PY'
import sys
from PIL import Image, ImageDraw
tmp, steps = sys.argv[1], sys.argv[2]
names = ["chelsea", "network", "optimized", "blend", "network_colors", "optimized_colors"]
labels = ["photo", "network (ulyanov_starry)", f"optimisation, {steps} L-BFGS steps", "blend: starry 0.5 + candy 0.5",
          "network, --preserve_colors", "optimisation, --preserve_colors"]
tiles = [Image.open(f"{tmp}/{n}.png").convert("RGB") for n in names]
tiles[0] = tiles[0].resize(tiles[1].size, Image.LANCZOS)
w, h, pad, caption, columns = tiles[1].width, tiles[1].height, 6, 16, 3
sheet = Image.new("RGB", (columns * (w + pad) - pad, 2 * (h + caption + pad) - pad), "white")
draw = ImageDraw.Draw(sheet)
for i, (tile, label) in enumerate(zip(tiles, labels)):
    x, y = (i % columns) * (w + pad), (i // columns) * (h + caption + pad)
    sheet.paste(tile, (x, y))
    draw.text((x + 2, y + h + 2), label, fill="black")
sheet.save("docs/control.jpg", quality=88)
Image.open(f"{tmp}/features.png").convert("RGB").save("docs/features.jpg", quality=88)
Image.open(f"{tmp}/features_gram.png").convert("RGB").save("docs/features_gram.jpg", quality=88)
print("docs/control.jpg docs/features.jpg docs/features_gram.jpg")
PY
