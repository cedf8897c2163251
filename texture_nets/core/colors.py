"""Colour preservation (Gatys, Ecker, Bethge, Hertzmann & Shechtman 2017, "Controlling Perceptual
Factors in Neural Style Transfer", section 5): keep the photo's colours, take the style's structure.

Two methods, as in the paper:
- luminance ('luminance'): style transfer on the luminance channel alone (YIQ's Y), recombined with
  the photo's chrominance (I, Q). The photo's colours are kept exactly (up to the 0..1 gamut); it works
  after the fact for a trained network, and for optimisation also on the inputs.
- colour matching ('match'): the style image is recoloured first, so that its pixels have the mean
  and covariance of the photo's, then the usual transfer runs. Colours come out close to the photo's
  palette but not equal to it; it needs the style image, so it serves optimisation only.

Luminance is the default: it keeps the colours exactly and works in both modes. Colour matching keeps
more of the style's local colour variation (its strokes keep some hue contrast), at the price of hues
that drift from the photo's where the style's colours were far from them.

All functions take N,3,H,W tensors in 0..1.
"""

from __future__ import annotations

import torch

from texture_nets.core.errors import TextureNetsError

METHODS = ("luminance", "match")

# NTSC YIQ (FCC 1953 coefficients), the space Gatys et al. use: Y is luminance, I and Q chrominance.
RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                           [0.595716, -0.274453, -0.321263],
                           [0.211456, -0.522591, 0.311135]])


def rgb_to_yiq(images: torch.Tensor) -> torch.Tensor:
    """N,3,H,W RGB → N,3,H,W YIQ (Y in 0..1; I, Q around 0)."""
    matrix = RGB_TO_YIQ.to(images.device, images.dtype)
    return torch.einsum("ij,njhw->nihw", matrix, images)


def yiq_to_rgb(images: torch.Tensor) -> torch.Tensor:
    """N,3,H,W YIQ → N,3,H,W RGB (not clamped)."""
    matrix = torch.linalg.inv(RGB_TO_YIQ.double()).to(images.device, images.dtype)
    return torch.einsum("ij,njhw->nihw", matrix, images)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """The Y channel repeated three times: a grey image VGG can read."""
    return rgb_to_yiq(images)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """`style`'s luminance shifted and scaled to the mean and standard deviation of `content`'s, so
    that luminance-only transfer does not move the photo's brightness and contrast (the paper's
    equation 5)."""
    style_y, content_y = luminance(style), luminance(content)
    scale = content_y.std() / style_y.std().clamp_min(1e-6)
    return ((style_y - style_y.mean()) * scale + content_y.mean()).clamp(0, 1)


def combine_luminance(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The luminance of `stylized` with the chrominance of `content` (same size), clamped to 0..1."""
    if stylized.shape[-2:] != content.shape[-2:]:
        raise TextureNetsError(f"colour preservation needs the stylized image and the photo at one size, "
                               f"got {tuple(stylized.shape[-2:])} and {tuple(content.shape[-2:])}")
    yiq = torch.cat([rgb_to_yiq(stylized)[:, :1], rgb_to_yiq(content.to(stylized.dtype))[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)


def match_colors(style: torch.Tensor, content: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """`style` recoloured by the affine map x ↦ A(x − μ_s) + μ_c that gives its pixels the mean and
    covariance of `content`'s, with A = Σ_c^½ Σ_s^-½ (the paper's "image analogies" variant, which it
    found to give fewer artefacts than the Cholesky one). Clamped to 0..1. The pixels stay in their
    dtype (a megapixel in ~10 ms); only the 3×3 statistics are float64."""
    def stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = images.float().transpose(0, 1).reshape(3, -1)
        mean = pixels.mean(dim=1, keepdim=True)
        centred = pixels - mean
        cov = (centred @ centred.T).double() / pixels.shape[1]
        return mean.double(), cov + eps * torch.eye(3, dtype=torch.float64, device=cov.device)

    def sqrtm(matrix: torch.Tensor, power: float) -> torch.Tensor:
        values, vectors = torch.linalg.eigh(matrix.cpu())
        return vectors @ torch.diag(values.clamp_min(eps) ** power) @ vectors.T

    style_mean, style_cov = stats(style)
    content_mean, content_cov = stats(content)
    transform = sqrtm(content_cov, 0.5) @ sqrtm(style_cov, -0.5)
    shift = content_mean.cpu() - transform @ style_mean.cpu()  # x ↦ A·x + (μ_c − A·μ_s)
    n, _, h, w = style.shape
    pixels = style.float().transpose(0, 1).reshape(3, -1)
    recoloured = torch.addmm(shift.float().to(pixels.device), transform.float().to(pixels.device), pixels)
    return recoloured.reshape(3, n, h, w).transpose(0, 1).to(style.dtype).clamp(0, 1)


def check_method(method: str | None) -> str | None:
    """None / '' (no colour preservation) or one of METHODS; anything else is a user error."""
    if not method:
        return None
    if method not in METHODS:
        raise TextureNetsError(f"preserve_colors must be one of {', '.join(METHODS)}, got {method!r}")
    return method
