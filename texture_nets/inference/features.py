"""What the network sees: VGG-19 activation maps and Gram matrices of one image, as pictures.

`activation_grid` shows, per layer, the channels that respond most strongly to the image (by mean
activation), each map scaled to its own maximum: early layers light up on edges and colours, deep
ones on object parts. `gram_heatmaps` shows each layer's Gram matrix, the statistic the style loss
compares: the strongest channels' co-activations (by the Gram diagonal, i.e. the channel's energy),
so the block is readable at any layer width. Heat maps use a perceptually ordered colour map
(dark = low, bright yellow = high).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from texture_nets.core.losses import gram_matrix

# Control points of matplotlib's "inferno" colour map (black → purple → orange → light yellow).
_INFERNO = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                     [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float64)

LABEL_HEIGHT = 14


def colormap(values: np.ndarray) -> np.ndarray:
    """H,W values in 0..1 → H,W,3 uint8 through the inferno colour map."""
    position = np.clip(values, 0, 1) * (len(_INFERNO) - 1)
    low = np.floor(position).astype(int).clip(0, len(_INFERNO) - 2)
    frac = (position - low)[..., None]
    return (_INFERNO[low] * (1 - frac) + _INFERNO[low + 1] * frac).round().astype(np.uint8)


def strongest_channels(activations: torch.Tensor, count: int) -> list[int]:
    """Indices of the `count` channels of 1,C,H,W activations with the highest mean, strongest first."""
    means = activations[0].float().mean(dim=(1, 2))
    return means.argsort(descending=True)[:count].tolist()


def _tile(values: torch.Tensor, size: tuple[int, int], resample) -> Image.Image:
    """One H,W map scaled to its own maximum, coloured, resized to `size` (width, height)."""
    values = values.float()
    peak = float(values.max())
    array = (values / peak).cpu().numpy() if peak > 0 else np.zeros(values.shape)
    return Image.fromarray(colormap(array)).resize(size, resample)


def _labelled_rows(rows: list[tuple[str, list[Image.Image]]], pad: int = 4) -> Image.Image:
    """Rows of tiles, each under a one-line label, on a white sheet."""
    width = max(sum(t.width for t in tiles) + pad * (len(tiles) - 1) for _, tiles in rows)
    height = sum(LABEL_HEIGHT + max(t.height for t in tiles) + pad for _, tiles in rows)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    y = 0
    for label, tiles in rows:
        draw.text((2, y + 1), label, fill="black")
        y += LABEL_HEIGHT
        x = 0
        for tile in tiles:
            sheet.paste(tile, (x, y))
            x += tile.width + pad
        y += max(t.height for t in tiles) + pad
    return sheet


def activation_grid(features: dict[str, torch.Tensor], top: int = 8, cell: int = 128) -> Image.Image:
    """One row per layer: its `top` strongest activation maps of one image, each `cell` pixels high."""
    rows = []
    for layer, activations in features.items():
        channels = strongest_channels(activations, top)
        h, w = activations.shape[2:]
        size = (max(1, round(cell * w / h)), cell)
        tiles = [_tile(activations[0, c], size, Image.Resampling.NEAREST if h < cell // 4 else Image.Resampling.BILINEAR)
                 for c in channels]
        rows.append((f"{layer}: {w}x{h}, {activations.shape[1]} channels; strongest: "
                     + ", ".join(map(str, channels)), tiles))
    return _labelled_rows(rows)


def gram_heatmaps(features: dict[str, torch.Tensor], channels: int = 64, cell: int = 256) -> Image.Image:
    """One heat map per layer, side by side: the Gram matrix among the `channels` strongest channels
    (by the Gram diagonal), ordered strongest first, scaled to its maximum with a square root so
    that weak co-activations stay visible."""
    tiles, labels = [], []
    for layer, activations in features.items():
        gram = gram_matrix(activations.float())[0]
        order = gram.diagonal().argsort(descending=True)[:channels]
        block = gram[order][:, order].clamp_min(0).sqrt()
        tiles.append(_tile(block, (cell, cell), Image.Resampling.NEAREST))
        labels.append(f"{layer} ({len(order)} of {gram.shape[0]})")
    pad = 8
    sheet = Image.new("RGB", (len(tiles) * (cell + pad) - pad, LABEL_HEIGHT + cell), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        draw.text((i * (cell + pad) + 2, 1), label, fill="black")
        sheet.paste(tile, (i * (cell + pad), LABEL_HEIGHT))
    return sheet
