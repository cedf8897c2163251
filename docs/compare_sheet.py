"""Lays out docs/compare.jpg for docs/make_compare.sh: a labelled grid, one row per style × photo,
columns photo | ours | the paper's generator, each picture at its own pixels.

    python docs/compare_sheet.py TMP_DIR OUTPUT.jpg "style ..." "photo ..."

TMP_DIR holds <photo>.png, ours_<style>/<photo>.png and paper_<style>_<photo>.png.
"""

from __future__ import annotations

import sys

from PIL import Image, ImageDraw, ImageFont

COLUMNS = ("photo", "ours (texture_nets)", "paper (Ulyanov 2016)")
PAD, HEADER, CAPTION, MAX_WIDTH = 6, 34, 26, 1800


def font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the small bitmap font
        return ImageFont.load_default()


def main(tmp: str, target: str, styles: list[str], photos: list[str]) -> None:
    rows = []
    for style in styles:
        for photo in photos:
            tiles = [Image.open(f"{tmp}/{photo}.png").convert("RGB"),
                     Image.open(f"{tmp}/ours_{style}/{photo}.png").convert("RGB"),
                     Image.open(f"{tmp}/paper_{style}_{photo}.png").convert("RGB")]
            if len({t.size for t in tiles}) != 1:
                raise SystemExit(f"{style}/{photo}: pictures of different sizes {[t.size for t in tiles]}")
            rows.append((f"{style} · {photo}", tiles))
    tile_w = max(t.width for _, tiles in rows for t in tiles)
    width = len(COLUMNS) * tile_w + (len(COLUMNS) - 1) * PAD
    if width > MAX_WIDTH:
        raise SystemExit(f"sheet {width} px wide > {MAX_WIDTH}: use a smaller SIZE")
    height = HEADER + sum(CAPTION + tiles[0].height + PAD for _, tiles in rows)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for i, title in enumerate(COLUMNS):
        draw.text((i * (tile_w + PAD) + 4, 6), title, fill="black", font=font(22))
    y = HEADER
    for label, tiles in rows:
        draw.text((4, y + 3), label, fill="black", font=font(18))
        y += CAPTION
        for i, tile in enumerate(tiles):
            sheet.paste(tile, (i * (tile_w + PAD) + (tile_w - tile.width) // 2, y))
        y += tiles[0].height + PAD
    sheet.save(target, quality=80)
    print(f"{target}: {sheet.width}x{sheet.height}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split())
