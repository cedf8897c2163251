#!/usr/bin/env bash
# Makes docs/photoreal.jpg, with the project's own commands on scikit-image's "coffee" and "astronaut"
# photos (pip install -e ".[docs]"): per shipped photographic style, a row of
#   photo | the style's photo | the network | the network --photorealistic | --optimize --photorealistic
# The optimisation uses the real VGG-19 weights in ../shared and the style's photo from ../shared's COCO.
# Usage: bash docs/make_photoreal.sh   (~4 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=../shared
SIZE=320
tmp=$(mktemp -d)
python - "$tmp" <<'PY'
import sys
from PIL import Image
from skimage import data
Image.fromarray(data.coffee()).save(f"{sys.argv[1]}/coffee.png")
Image.fromarray(data.astronaut()).save(f"{sys.argv[1]}/astronaut.png")
PY
rows=("coffee winter $SHARED/data/coco/train2017/000000000508.jpg"
      "astronaut lamplight $SHARED/data/coco/val2017/000000403353.jpg")
for row in "${rows[@]}"; do
  read -r photo style image <<<"$row"
  python stylize.py --model "$style" --input "$tmp/$photo.png" --size $SIZE --output "$tmp/${style}_plain.png"
  python stylize.py --model "$style" --input "$tmp/$photo.png" --size $SIZE --photorealistic --output "$tmp/${style}_fast.png"
  python stylize.py --optimize --style "$image" --input "$tmp/$photo.png" --size $SIZE --photorealistic \
    --vgg_weights "$SHARED/vgg19/vgg19_caffe_features_fp16.pth" --output "$tmp/${style}_optimised.png"
  cp "$image" "$tmp/${style}_style.jpg"
done
python - "$tmp" docs/photoreal.jpg <<'PY'
import sys
from PIL import Image, ImageDraw, ImageFont
tmp, target = sys.argv[1:]
columns = ("photo", "style photo", "network", "network --photorealistic", "--optimize --photorealistic")
h, pad, caption = 240, 6, 22
rows = []
for photo, style in (("coffee", "winter"), ("astronaut", "lamplight")):
    tiles = [Image.open(f"{tmp}/{photo}.png")] + [Image.open(f"{tmp}/{style}_{k}.{'jpg' if k == 'style' else 'png'}")
                                                 for k in ("style", "plain", "fast", "optimised")]
    rows.append([t.convert("RGB").resize((round(t.width * h / t.height), h)) for t in tiles])
width = max(sum(t.width for t in row) + pad * (len(row) + 1) for row in rows)
sheet = Image.new("RGB", (width, len(rows) * (h + caption + pad) + pad), "white")
draw = ImageDraw.Draw(sheet)
font = ImageFont.load_default(size=14) if hasattr(ImageFont, "load_default") else None
y = pad
for (photo, style), row in zip((("coffee", "winter"), ("astronaut", "lamplight")), rows):
    x = pad
    for label, tile in zip(columns, row):
        sheet.paste(tile, (x, y))
        draw.text((x, y + h + 3), label if label != "style photo" else f"style: {style}", fill="black", font=font)
        x += tile.width + pad
    y += h + caption + pad
sheet.save(target, quality=88)
print(f"wrote {target}")
PY
