"""Perceptual losses (Gatys et al. 2016; Johnson et al. 2016; Ulyanov et al. 2016).

Style: squared distance between Gram matrices of VGG activations, per layer. Content: squared
distance between activations. Total variation: mean absolute difference of neighbouring pixels.

Departure from the papers, and why: each layer's style loss and the content loss are divided by the
mean square of their (fixed) target, i.e. they are *relative* squared errors. With the original
Caffe VGG-19 weights raw activations reach 10^2–10^3 and raw Gram losses 10^5–10^8, with orders of
magnitude between layers; the relative form makes every layer count alike, makes one set of default
weights serve Caffe and torchvision weights and any image size, and keeps numbers readable (a style
loss of 0.1 means the Grams are off by about 30% RMS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from texture_nets.core.colors import RGB_TO_YIQ
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import MAX_STYLE_SCALE, MAX_STYLE_SIDE, MIN_STYLE_SCALE, MIN_STYLE_SIDE
from texture_nets.core.settings import check_fields, setting
from texture_nets.core.vgg import VGG19Features, check_layers


class _LowPrecisionGram(torch.autograd.Function):
    """FᵀF / norm of N,HW,C bf16 (or fp16) features: the Gram in fp32, its gradient in the features'
    own dtype. The gradient flows on into bf16 VGG layers, so computing it in fp32 and rounding it
    there (what autograd would do) buys nothing; in bf16 the backward runs on the CPU's matrix units
    (2.5–5× faster per layer, measured) and equals the fp32 one to one bf16 rounding (0.26%)."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, norm: float) -> torch.Tensor:
        ctx.save_for_backward(flat)
        ctx.norm = norm
        wide = flat.float()
        return torch.bmm(wide.transpose(1, 2), wide) / norm

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        flat, = ctx.saved_tensors
        symmetric = ((grad + grad.transpose(1, 2)) / ctx.norm).to(flat.dtype)
        return torch.bmm(flat, symmetric), None


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of N,C,H,W features, normalised by C·H·W, computed in float32: N,C,C."""
    n, c, h, w = features.shape
    with torch.autocast(features.device.type, enabled=False):
        if features.is_contiguous(memory_format=torch.channels_last) and not features.is_contiguous():
            # N,H,W,C in memory: a free view as N,HW,C, and Fᵀ·F, instead of a copy to N,C,HW
            # (2.1× faster forward and backward at relu1_1 on the CPU, the same numbers)
            flat = features.permute(0, 2, 3, 1).reshape(n, h * w, c)
            if flat.dtype in (torch.bfloat16, torch.float16):
                return _LowPrecisionGram.apply(flat, float(c * h * w))
            return torch.bmm(flat.transpose(1, 2), flat) / (c * h * w)
        flat = features.float().reshape(n, c, h * w)
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def mean_square(tensor: torch.Tensor) -> torch.Tensor:
    """mean(tensor^2), computed in float32."""
    with torch.autocast(tensor.device.type, enabled=False):
        return tensor.float().pow(2).mean()


def relative_mse(value: torch.Tensor, target: torch.Tensor,
                 target_power: torch.Tensor | None = None) -> torch.Tensor:
    """mean((value - target)^2) / mean(target^2): a squared error that ignores the target's scale.
    `target_power` replaces mean(target^2) where that is known over a larger batch than `target`."""
    with torch.autocast(value.device.type, enabled=False):
        value, target = value.float(), target.float()
        power = mean_square(target) if target_power is None else target_power
        return (value - target).pow(2).mean() / power.clamp_min(1e-12)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation: mean |x[i+1,j]-x[i,j]| + mean |x[i,j+1]-x[i,j]|."""
    dy = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().mean()
    dx = (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().mean()
    return dx + dy


LUMINANCE_BLOCK = 8  # pixels averaged per side before the luminance layouts are compared


def luminance_layout_loss(output: torch.Tensor, photo: torch.Tensor, block: int = LUMINANCE_BLOCK) -> torch.Tensor:
    """Mean over images of 1 − the Pearson correlation of the output's and the photo's luminance,
    each averaged over block×block pixels: 0 where light and shade fall where the photo's do, at any
    brightness and contrast (the style's to choose), 1 for no relation, 2 for a negative.

    The Gram matrices of the style loss are blind to *where* features occur, so nothing else in the
    loss asks the bright parts of the photo to stay brighter than its dark parts; with a dark style
    (pleades) the faces and the sky sink to the same darkness. This asks exactly that, at a scale
    (8 px in a 256-px crop) far coarser than the strokes, which stay the style's."""
    weights = RGB_TO_YIQ[0].to(output.device).view(1, 3, 1, 1)  # Y, as colour preservation uses it
    layouts = [F.avg_pool2d((image.float() * weights).sum(1, keepdim=True), block, ceil_mode=True).flatten(1)
               for image in (output, photo.detach())]
    a, b = (x - x.mean(1, keepdim=True) for x in layouts)
    correlation = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)
    return (1 - correlation).mean()


def check_weights(weights: list[float], count: int, name: str, of: str, each: str, some: bool = False) -> None:
    """Refuse per-item weights (`name`) that are not one per item of `of` (`count` of them, one per
    `each`), or negative, or (`some`: a blend) all zero: one message for the config and the library."""
    if len(weights) != count:
        raise TextureNetsError(f"{len(weights)} {name} weights for {count} {of}: give one weight per {each}")
    if any(w < 0 for w in weights) or (some and sum(weights) <= 0):
        raise TextureNetsError(f"{name} weights must be ≥ 0{' and not all zero' if some else ''}, got {weights}")
    if not math.isfinite(sum(weights)):  # each finite, but a blend's normalising sum overflows
        raise TextureNetsError(f"{name} weights are too large (their sum overflows), got {weights}")


@dataclass
class LossTerms:
    """One evaluation of the perceptual loss: the weighted total and its (weighted) parts."""

    total: torch.Tensor
    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor
    style_layers: dict[str, torch.Tensor] = field(default_factory=dict)
    output_tv: torch.Tensor | None = None  # unweighted total variation of the output: a smoothness gauge
    luminance: torch.Tensor | None = None  # the weighted luminance-layout term, where it is on

    def as_floats(self) -> dict[str, float]:
        """Plain numbers for logging (one host sync for all of them)."""
        extra = {} if self.output_tv is None else {"output_tv": self.output_tv}
        if self.luminance is not None:
            extra["luminance"] = self.luminance
        parts = {"total": self.total, "content": self.content, "style": self.style, "tv": self.tv,
                 **{f"style/{k}": v for k, v in self.style_layers.items()}, **extra}
        values = torch.stack(list(parts.values())).detach().float().cpu().tolist()
        return dict(zip(parts, values))


class PerceptualLoss(nn.Module):
    """content_weight·content + style_weight·Σ_i blend_i Σ_l w_l·style_l(i) + tv_weight·TV
    (+ luminance_weight·luminance layout, where it is on and photos are given).

    `vgg` maps images to {layer: activations}; `set_style` computes the Gram targets once;
    `forward(output, content)` sets the content target per batch from the photos themselves.
    """

    def __init__(self, vgg: nn.Module, *, style_layers, style_weights=None, content_layers=("relu4_2",),
                 style_weight: float = 1.0, content_weight: float = 1.0, tv_weight: float = 0.0,
                 luminance_weight: float = 0.0):
        super().__init__()
        self.vgg = vgg
        self.style_layers = list(style_layers)
        self.content_layers = list(content_layers)
        weights = [1.0] * len(self.style_layers) if style_weights is None else list(style_weights)
        check_weights(weights, len(self.style_layers), "style_weights", "style_layers", "layer")
        if not self.style_layers and style_weight:
            raise TextureNetsError("style_layers is empty: name at least one layer, or set style_weight 0")
        self.layer_weights = dict(zip(self.style_layers, weights))
        self.style_weight, self.content_weight, self.tv_weight = style_weight, content_weight, tv_weight
        self.luminance_weight = luminance_weight
        self.blend: list[float] = []

    @classmethod
    def from_config(cls, config) -> "PerceptualLoss":
        """The loss a `LossConfig` (or a TrainConfig / OptimizeConfig) describes, with its VGG-19
        extractor; style targets still to be set with `set_style`."""
        vgg = VGG19Features(config.style_layers + config.content_layers, weights=config.vgg_weights or "imagenet",
                            pooling=config.pooling)
        return cls(vgg, style_layers=config.style_layers, style_weights=config.style_weights or None,
                   content_layers=config.content_layers, style_weight=config.style_weight,
                   content_weight=config.content_weight, tv_weight=config.tv_weight,
                   luminance_weight=config.luminance_weight)

    @torch.no_grad()
    def set_style(self, style_images: list[torch.Tensor], blend: list[float] | None = None) -> None:
        """Compute and keep the Gram targets of 1,3,H,W style images (0..1), mixed by `blend` weights."""
        blend = [1.0 / len(style_images)] * len(style_images) if blend is None else list(blend)
        check_weights(blend, len(style_images), "style_blend", "style images", "style image", some=True)
        total = sum(blend)
        self.blend = [b / total for b in blend]
        for i, image in enumerate(style_images):
            feats = self.vgg(image, self.style_layers)
            for layer in self.style_layers:
                self.register_buffer(f"gram_{i}_{layer}", gram_matrix(feats[layer]), persistent=False)

    def style_targets(self, index: int) -> dict[str, torch.Tensor]:
        """The Gram targets of style image `index`, by layer."""
        return {layer: getattr(self, f"gram_{index}_{layer}") for layer in self.style_layers}

    def forward(self, output: torch.Tensor, content: torch.Tensor | None = None, *,
                batch_mean: Callable[[torch.Tensor], torch.Tensor] | None = None) -> LossTerms:
        """Losses of generated images `output` against the style and, if given, the photos `content`.

        batch_mean: in multi-process training, where `output` is this process's slice of the global
        batch, a function averaging a tensor over the processes. Every term is a mean over images,
        except the content loss's normaliser mean(target^2); it is averaged over the global batch, so
        the losses and, after DDP's gradient average, the gradients equal one process's on the whole
        batch. None: `output` is the whole batch.
        """
        if self.style_layers and not self.blend:
            raise RuntimeError("call set_style() before computing the loss")
        layers = list(dict.fromkeys(self.style_layers + (self.content_layers if content is not None else [])))
        feats = self.vgg(output, layers)
        zero = output.new_zeros((), dtype=torch.float32)

        content_loss = zero
        if content is not None and self.content_layers:
            with torch.no_grad():
                targets = self.vgg(content, self.content_layers)
                powers = torch.stack([mean_square(targets[l]) for l in self.content_layers])
                if batch_mean is not None:
                    powers = batch_mean(powers)  # one collective for all content layers
            content_loss = sum(relative_mse(feats[l], targets[l], powers[i])
                               for i, l in enumerate(self.content_layers))
            content_loss = self.content_weight * content_loss / len(self.content_layers)

        per_layer = {}
        for layer in self.style_layers:
            gram = gram_matrix(feats[layer])
            loss = sum(b * relative_mse(gram, self.style_targets(i)[layer].expand_as(gram))
                       for i, b in enumerate(self.blend))
            per_layer[layer] = self.style_weight * self.layer_weights[layer] * loss
        style_loss = sum(per_layer.values(), zero)
        if self.tv_weight:
            output_tv = total_variation(output.float())
            tv_loss = self.tv_weight * output_tv
        else:  # still measured (cheap, outside the graph): it shows grain that noise or style adds
            with torch.no_grad():
                output_tv, tv_loss = total_variation(output.float()), zero
        luminance_loss = None
        if content is not None and self.luminance_weight:
            luminance_loss = self.luminance_weight * luminance_layout_loss(output, content)
        total = content_loss + style_loss + tv_loss + (zero if luminance_loss is None else luminance_loss)
        return LossTerms(total=total, content=content_loss, style=style_loss, tv=tv_loss, style_layers=per_layer,
                         output_tv=output_tv.detach(), luminance=luminance_loss)


DEFAULT_STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


@dataclass
class LossConfig:
    """The perceptual loss: style image scale, blend, VGG layers and weights. One definition serves
    training (TrainConfig) and optimisation-based stylization (OptimizeConfig), so both measure the
    same thing and take the same flags."""

    style_blend: list[float] = setting([], "blend weights of the style images (comma-separated; default: equal)",
                                       resumable=False, recipe=True, per_phase=False)
    style_size: int = setting(512, "style images are resized so the longer side is style_size (never enlarged)",
                              resumable=False, recipe=True, per_phase=True)
    style_scale: float = setting(1.0, "then scaled by this factor (Gatys et al.'s style scale): above 1 the style's "
                                      "strokes, tiles or stars come out larger, below 1 finer",
                                 resumable=False, recipe=True, per_phase=True)
    style_weight: float = setting(1.0, "weight of the style loss (relative Gram error, see losses.py)",
                                  resumable=False, recipe=True, per_phase=True)
    style_weights: list[float] = setting([], "per-layer style weights, one per style layer (default: all 1)",
                                         resumable=False, recipe=True, per_phase=True)
    content_weight: float = setting(1.0, "weight of the content loss (relative feature error)",
                                    resumable=False, recipe=True, per_phase=True)
    tv_weight: float = setting(0.0, "weight of the total-variation smoothness loss",
                               resumable=False, recipe=True, per_phase=True)
    luminance_weight: float = setting(0.0, "weight of the luminance-layout loss: 1 − correlation of the output's and "
                                           "the photo's luminance over 8×8-pixel blocks; keeps where the photo is light "
                                           "and dark, which the style's Gram statistics leave free (0: off)",
                                      resumable=False, recipe=True, per_phase=True)
    style_layers: list[str] = setting(DEFAULT_STYLE_LAYERS, "VGG-19 layers of the style loss (comma-separated)",
                                      resumable=False, recipe=True, per_phase=True)
    content_layers: list[str] = setting(["relu4_2"], "VGG-19 layers of the content loss (comma-separated)",
                                        resumable=False, recipe=True, per_phase=True)
    pooling: str = setting("max", "VGG pooling: 'max' or 'avg'", choices=("max", "avg"),
                           resumable=False, recipe=True, per_phase=True)
    vgg_weights: str = setting("", "VGG-19 weights: a state_dict file, 'imagenet' (torchvision download) or "
                                   "'random' (tests only); default: $TEXTURE_NETS_VGG_WEIGHTS, else 'imagenet'",
                               resumable=True, recipe=False, per_phase=False)

    def check_loss(self, num_styles: int, flag: str) -> None:
        """Check the loss settings for `num_styles` style images (given with `flag`); raise
        TextureNetsError with what to fix."""
        check_fields(self)
        if self.style_size < MIN_STYLE_SIDE:  # VGG-19 pools 4 times before relu5_1
            raise TextureNetsError(f"style_size must be at least {MIN_STYLE_SIDE} pixels, got {self.style_size}")
        if not MIN_STYLE_SCALE <= self.style_scale <= MAX_STYLE_SCALE:
            raise TextureNetsError(f"style_scale must be in [{MIN_STYLE_SCALE}, {MAX_STYLE_SCALE}], "
                                   f"got {self.style_scale}")
        if self.style_size * self.style_scale > MAX_STYLE_SIDE:  # the side VGG sees, whatever the image
            raise TextureNetsError(f"style_size × style_scale must be at most {MAX_STYLE_SIDE} pixels, got "
                                   f"{self.style_size} × {self.style_scale:g}")
        for name in ("style_weight", "content_weight", "tv_weight", "luminance_weight"):
            if getattr(self, name) < 0:
                raise TextureNetsError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if not num_styles:
            raise TextureNetsError(f"no style image: pass {flag} PATH")
        if self.style_blend:
            check_weights(self.style_blend, num_styles, "style_blend", f"{flag} images", "style image", some=True)
        check_layers(self.style_layers + self.content_layers)
        if self.style_weights:
            check_weights(self.style_weights, len(self.style_layers), "style_weights", "style_layers", "layer")
