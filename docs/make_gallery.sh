#!/usr/bin/env bash
# Makes the README gallery with the project's own commands (stylize.py) from the shipped styles:
#   docs/gallery.jpg       scikit-image's "chelsea" sample photo in every style of texture_nets/styles/
#   docs/noise_strip.jpg   the same photo in one style at several noise factors
# Needs scikit-image (pip install -e ".[docs]"). Usage: bash docs/make_gallery.sh [noise_style]  (~1 min)
set -euo pipefail
cd "$(dirname "$0")/.."
NOISE_STYLE=${1:-ulyanov_starry}
STYLES="mosaic candy starry_night the_scream udnie wave ulyanov_mosaic pleades ulyanov_starry turner"
FACTORS="0 0.1 0.5 1 2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python -c "import sys; from PIL import Image; from skimage import data; Image.fromarray(data.chelsea()).save(sys.argv[1])" "$tmp/chelsea.png"
for style in $STYLES; do
  python stylize.py --model "$style" --input "$tmp/chelsea.png" --output "$tmp/$style.png" --seed 0
done
for factor in $FACTORS; do
  python stylize.py --model "$NOISE_STYLE" --input "$tmp/chelsea.png" --output "$tmp/noise_$factor.png" \
    --noise_factor "$factor" --seed 0
done
python - "$tmp" "$STYLES" "$FACTORS" "$NOISE_STYLE" <<'PY'
import sys
from PIL import Image, ImageDraw
tmp, styles, factors, noise_style = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]

def sheet(tiles, labels, columns, target, height=200, pad=6, caption=16):
    """Tiles in a grid with a label under each, saved as JPEG."""
    tiles = [t.resize((round(t.width * height / t.height), height), Image.LANCZOS) for t in tiles]
    w = max(t.width for t in tiles)
    rows = (len(tiles) + columns - 1) // columns
    out = Image.new("RGB", (columns * (w + pad) - pad, rows * (height + caption + pad) - pad), "white")
    draw = ImageDraw.Draw(out)
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        x, y = (i % columns) * (w + pad), (i // columns) * (height + caption + pad)
        out.paste(tile, (x, y))
        draw.text((x + 2, y + height + 2), label, fill="black")
    out.save(target, quality=88)
    print(target)

photo = Image.open(f"{tmp}/chelsea.png").convert("RGB")
sheet([photo] + [Image.open(f"{tmp}/{s}.png") for s in styles], ["photo"] + styles, 4, "docs/gallery.jpg")
sheet([Image.open(f"{tmp}/noise_{f}.png") for f in factors], [f"{noise_style}, noise_factor {f}" for f in factors],
      len(factors), "docs/noise_strip.jpg", height=180)
PY
