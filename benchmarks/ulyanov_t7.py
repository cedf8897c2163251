"""The Texture Networks paper's released stylization generators (Torch7 .t7 files), run in PyTorch,
for side-by-side comparison only (benchmarks/quality.py). Needs the `torchfile` package.

The .t7 graph is interpreted module by module (Sequential, Concat, SpatialAveragePooling, GenNoise,
SpatialCircularPadding, SpatialConvolution, SpatialBatchNormalization, LeakyReLU,
SpatialUpSamplingNearest), following the authors' own usage (their supplementary notebook):
- input: 1,6,H,W = the RGB photo in 0..1, twice; each scale's GenNoise overwrites channels 4–6 with
  uniform noise in 0..1;
- the network is run as loaded, i.e. its BatchNorm layers in training mode: statistics of the
  batch, which for one photo at a time is instance normalisation;
- output: BGR, minus the Caffe mean pixel, in 0..255 (their `deprocess` turns it into RGB 0..1 by
  adding the mean, dividing by 256 and clamping).
- H and W must be multiples of 32 (the notebook resizes to them); here the photo is reflect-padded
  to the next multiple and the output cropped, so every network sees exactly the same photo.

Quirk: several BatchNorm layers hold 8 channels but are applied to 16/24/32-channel tensors. Torch7
read the missing per-channel parameters past the end of the 8-element weight and bias, which in
training (parameters flattened by getParameters, in module order: weight, bias, ...) means from the
parameters that follow them. `flat_parameters` rebuilds that flat vector so the overflow reads what
the network was trained with. Checked on 4 held-out photos at 512 px: read this way the mosaic
model's style loss is 0.36 (turner: 0.71); with the extra channels left unscaled and unshifted
instead, 2.08 (1.92), and its pictures lose the style.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def load_t7(path: str | Path):
    """The Torch7 object tree of a .t7 file (torchfile is imported here: only benchmarks need it)."""
    import torchfile
    return torchfile.load(str(path))


def children(node) -> list:
    """The sub-modules of a Torch7 container (empty for a leaf)."""
    mods = node._obj.get(b"modules")
    if mods is None:
        return []
    return list(mods.values()) if isinstance(mods, dict) else list(mods)


def leaves_with_parameters(node, out: list | None = None) -> list:
    """Modules holding weight/bias, depth-first in Torch7's parameters() order."""
    out = [] if out is None else out
    kids = children(node)
    if not kids and node._obj.get(b"weight") is not None and np.size(node._obj[b"weight"]):
        out.append(node)
    for child in kids:
        leaves_with_parameters(child, out)
    return out


def flat_parameters(root) -> tuple[np.ndarray, dict[int, int]]:
    """All parameters in one vector, as getParameters() lays them out (per module: weight, then bias),
    and each module's offset into it (keyed by id of the module's object)."""
    chunks, offsets, position = [], {}, 0
    for leaf in leaves_with_parameters(root):
        offsets[id(leaf)] = position
        for key in (b"weight", b"bias"):
            values = np.asarray(leaf._obj[key], dtype=np.float32).ravel()
            chunks.append(values)
            position += values.size
    return np.concatenate(chunks), offsets


class T7BatchNorm(nn.Module):
    """SpatialBatchNormalization in training mode (batch statistics), with the overflow quirk: a
    layer of `n` channels applied to more reads its extra scale and shift from the flat vector."""

    def __init__(self, flat: np.ndarray, offset: int, channels: int, eps: float):
        super().__init__()
        self.flat, self.offset, self.channels, self.eps = flat, offset, channels, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        weight = torch.from_numpy(self.flat[self.offset:self.offset + c].copy())
        bias = torch.from_numpy(self.flat[self.offset + self.channels:self.offset + self.channels + c].copy())
        if weight.numel() < c or bias.numel() < c:
            raise ValueError(f"BatchNorm overflow past the end of the parameters ({c} channels)")
        return F.batch_norm(x, None, None, weight.to(x), bias.to(x), training=True, eps=self.eps)


class GenNoise(nn.Module):
    """Channels 4–6 of the 6-channel input become uniform noise in 0..1 (scaled by noise_factor)."""

    def __init__(self, owner: "UlyanovT7"):
        super().__init__()
        self.owner = [owner]  # a list, so the owner is not registered as a sub-module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.rand(x.shape[0], 3, *x.shape[2:], generator=self.owner[0].rng, dtype=x.dtype)
        return torch.cat([x[:, :3], noise.to(x.device) * self.owner[0].noise_factor], dim=1)


class Concat(nn.Module):
    """nn.Concat: every branch sees the input; outputs joined along `dim`."""

    def __init__(self, branches: list[nn.Module], dim: int):
        super().__init__()
        self.branches, self.dim = nn.ModuleList(branches), dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=self.dim)


def _obj(node, key):
    return node._obj[key.encode()]


def convert(node, flat: np.ndarray, offsets: dict[int, int], owner: "UlyanovT7") -> nn.Module:
    """A PyTorch module equivalent to one Torch7 module (recursively)."""
    kind = node._typename.decode()
    if kind == "nn.Sequential":
        return nn.Sequential(*[convert(c, flat, offsets, owner) for c in children(node)])
    if kind == "nn.Concat":
        return Concat([convert(c, flat, offsets, owner) for c in children(node)], int(_obj(node, "dimension")) - 1)
    if kind == "nn.SpatialAveragePooling":
        k, s = (int(_obj(node, "kH")), int(_obj(node, "kW"))), (int(_obj(node, "dH")), int(_obj(node, "dW")))
        return nn.AvgPool2d(k, s) if k != (1, 1) else nn.Identity()
    if kind == "nn.GenNoise":
        return GenNoise(owner)
    if kind == "nn.SpatialCircularPadding":
        pads = tuple(int(_obj(node, k)) for k in ("pad_l", "pad_r", "pad_t", "pad_b"))
        return nn.Identity() if not any(pads) else _CircularPad(pads)
    if kind == "nn.SpatialConvolution":
        weight = torch.from_numpy(np.asarray(_obj(node, "weight"), dtype=np.float32).copy())
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2:], stride=int(_obj(node, "dH")),
                         padding=int(_obj(node, "padH")))
        conv.weight.data.copy_(weight)
        conv.bias.data.copy_(torch.from_numpy(np.asarray(_obj(node, "bias"), dtype=np.float32).copy()))
        return conv
    if kind == "nn.SpatialBatchNormalization":
        return T7BatchNorm(flat, offsets[id(node)], int(np.size(_obj(node, "weight"))), float(_obj(node, "eps")))
    if kind == "nn.LeakyReLU":
        return nn.LeakyReLU(float(_obj(node, "negval")))
    if kind == "nn.SpatialUpSamplingNearest":
        return nn.Upsample(scale_factor=int(_obj(node, "scale_factor")), mode="nearest")
    raise ValueError(f"unsupported Torch7 module {kind}")


class _CircularPad(nn.Module):
    def __init__(self, pads: tuple[int, int, int, int]):
        super().__init__()
        self.pads = pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads, mode="circular")


class UlyanovT7(nn.Module):
    """A released stylization generator: N,3,H,W RGB in 0..1 → N,3,H,W RGB in 0..1 (any H, W).

    Images are processed one at a time (their BatchNorm is per batch); `seed` fixes the noise."""

    multiple = 32

    def __init__(self, path: str | Path, noise_factor: float = 1.0):
        super().__init__()
        root = load_t7(path)
        flat, offsets = flat_parameters(root)
        self.noise_factor = noise_factor
        self.rng = torch.Generator().manual_seed(0)
        self.net = convert(root, flat, offsets, self)
        self.name = Path(path).stem

    @torch.no_grad()
    def forward(self, photos: torch.Tensor, seed: int | None = 0) -> torch.Tensor:
        if seed is not None:
            self.rng.manual_seed(seed)
        return torch.cat([self._one(photo.unsqueeze(0)) for photo in photos])

    def _one(self, photo: torch.Tensor) -> torch.Tensor:
        h, w = photo.shape[2:]
        ph, pw = math.ceil(h / self.multiple) * self.multiple, math.ceil(w / self.multiple) * self.multiple
        padded = F.pad(photo, (0, pw - w, 0, ph - h), mode="reflect") if (ph, pw) != (h, w) else photo
        out = self.net(torch.cat([padded, padded], dim=1))[:, :, :h, :w]
        mean = torch.tensor(CAFFE_MEAN_BGR, dtype=out.dtype, device=out.device).view(1, 3, 1, 1)
        return ((out + mean).flip(1) / 256.0).clamp(0, 1)
