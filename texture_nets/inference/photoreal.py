"""Photorealism: a stylized picture kept locally an affine function of the photo's colours.

Two tools, both matrix-free (box filters, O(N) memory, so a megapixel picture fits):

- `MattingLaplacian`: Levin et al. 2008's matting Laplacian L of the photo (3×3 windows, ε), as the
  product L·v and the energy Σ_c V_cᵀ L V_c that Luan et al. 2017 ("Deep Photo Style Transfer") add
  to Gatys et al.'s loss: zero for an output that is, in every window, an affine function of the
  photo's colours (a global colour change included), large for strokes the photo does not have.
  Built from differentiable tensor operations, so its gradient (2·L·V) comes from autograd exactly.
- `guided_filter`: He et al. 2010's guided filter with the photo as guide, fitted at low resolution
  and upsampled (He & Sun 2015, "Fast Guided Filter"): every trained style's output made locally
  affine in the photo in one cheap pass (FastPhotoStyle's fast smoothing step does the same).
- `photographic`: the fast path of `stylize.py --photorealistic`: the guided filter, then the
  stylized picture's colour mean and covariance given back by one global affine colour map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from texture_nets.core.colors import match_colors
from texture_nets.core.errors import TextureNetsError

MATTING_EPS = 1e-7  # Levin et al.'s (and Luan et al.'s) ε
GUIDE_RADIUS = 48  # pixels at full resolution: the windows the output is affine in (smaller: more local light)
GUIDE_EPS = 1e-2  # regularises a window's fit: larger keeps less of the stylized texture
MAX_GUIDE_RADIUS = 512


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The mean of each (2r+1)² window around every pixel (windows cut at the borders), N,C,H,W.
    Differences of running sums along each axis (He et al.'s O(1) box filter): the cost does not
    grow with the radius (a 9×9 pooling took 3.5× longer at one megapixel)."""
    return _box_mean_1d(_box_mean_1d(x, radius, 2), radius, 3)


def _box_mean_1d(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """The mean over [i − r, i + r] ∩ [0, n) along `dim`, from running sums in float64 (the
    differences of large sums keep their precision), padded so both ends are plain slices."""
    n = x.shape[dim]
    sums = torch.cumsum(x.double(), dim)  # sums[i] = Σ x[:i + 1]
    zeros = torch.zeros_like(sums.narrow(dim, 0, 1)).expand(*[radius + 1 if d == dim else -1
                                                              for d in range(x.dim())])
    last = sums.narrow(dim, n - 1, 1).expand(*[radius if d == dim else -1 for d in range(x.dim())])
    padded = torch.cat([zeros, sums, last], dim)  # padded[k + r + 1] = Σ x[:k + 1], clamped at both ends
    window = padded.narrow(dim, 2 * radius + 1, n) - padded.narrow(dim, 0, n)
    index = torch.arange(n, device=x.device)
    count = ((index + radius + 1).clamp(max=n) - (index - radius).clamp(min=0)).to(torch.float64)
    shape = [1] * x.dim()
    shape[dim] = n
    return (window / count.view(shape)).to(x.dtype)


def check_guide(radius: int, eps: float) -> None:
    """Refuse a guided filter's radius or ε that is absurd, before any work."""
    if not 1 <= radius <= MAX_GUIDE_RADIUS:
        raise TextureNetsError(f"--photoreal_radius must be in 1..{MAX_GUIDE_RADIUS} pixels, got {radius}")
    if not 0 < eps < float("inf"):
        raise TextureNetsError(f"--photoreal_eps must be a finite number > 0, got {eps}")


def _affine_fit(guide: torch.Tensor, picture: torch.Tensor, radius: int, eps: float):
    """Per pixel, the window's least-squares fit picture ≈ A·guide + b (A: C×3, b: C): (A, b) as
    N,C,3,H,W and N,C,H,W, with the windows' means averaged over the windows covering each pixel."""
    mean_i = box_mean(guide, radius)  # N,3,H,W
    mean_p = box_mean(picture, radius)  # N,C,H,W
    n, _, h, w = guide.shape
    products = guide.unsqueeze(1) * guide.unsqueeze(2)  # N,3,3,H,W
    sigma = box_mean(products.flatten(1, 2), radius).view(n, 3, 3, h, w) - mean_i.unsqueeze(1) * mean_i.unsqueeze(2)
    cross = box_mean((picture.unsqueeze(2) * guide.unsqueeze(1)).flatten(1, 2), radius).view(n, -1, 3, h, w)
    cov = cross - mean_p.unsqueeze(2) * mean_i.unsqueeze(1)  # N,C,3,H,W
    sigma = sigma.permute(0, 3, 4, 1, 2) + eps * torch.eye(3, dtype=guide.dtype, device=guide.device)
    a = torch.linalg.solve(sigma.unsqueeze(3), cov.permute(0, 3, 4, 1, 2).unsqueeze(-1)).squeeze(-1)  # N,H,W,C,3
    a = a.permute(0, 3, 4, 1, 2)  # N,C,3,H,W
    b = mean_p - (a * mean_i.unsqueeze(1)).sum(2)
    mean_a = box_mean(a.flatten(1, 2), radius).view_as(a)
    return mean_a, box_mean(b, radius)


def guided_filter(guide: torch.Tensor, picture: torch.Tensor, radius: int = GUIDE_RADIUS, eps: float = GUIDE_EPS,
                  scale: int | None = None) -> torch.Tensor:
    """`picture` (N,C,H,W in 0..1) as a local affine function of `guide` (the photo, N,3,H,W in 0..1):
    He et al.'s guided filter, fitted at 1/`scale` resolution and its coefficients upsampled (He &
    Sun's fast guided filter; `scale` None: chosen so the fit sees at least 4-pixel windows)."""
    check_guide(radius, eps)
    guide, picture = guide.float(), picture.float().to(guide.device)
    if scale is None:
        scale = max(1, min(radius // 4, min(guide.shape[2:]) // 16))
    small = (max(1, guide.shape[2] // scale), max(1, guide.shape[3] // scale))
    low_guide = F.interpolate(guide, size=small, mode="area") if scale > 1 else guide
    low_picture = F.interpolate(picture, size=small, mode="area") if scale > 1 else picture
    a, b = _affine_fit(low_guide, low_picture, max(1, radius // scale), eps)
    if scale > 1:
        size = guide.shape[2:]
        a = F.interpolate(a.flatten(1, 2), size=size, mode="bilinear", align_corners=False).view(
            a.shape[0], a.shape[1], 3, *size)
        b = F.interpolate(b, size=size, mode="bilinear", align_corners=False)
    return ((a * guide.unsqueeze(1)).sum(2) + b).clamp(0, 1)


def photographic(photo: torch.Tensor, stylized: torch.Tensor, radius: int = GUIDE_RADIUS,
                 eps: float = GUIDE_EPS) -> torch.Tensor:
    """`stylized` (N,3,H,W in 0..1) made photographic: the guided filter with `photo` as guide, then
    each picture recoloured to its stylized picture's mean and covariance. The filter's window
    averages grey the style's colours; a global affine colour map gives them back and keeps the
    output locally affine in the photo (a global colour change has no matting energy)."""
    filtered = guided_filter(photo, stylized, radius, eps)
    return torch.cat([match_colors(one, target) for one, target in zip(filtered.split(1), stylized.split(1))])


class MattingLaplacian:
    """Levin et al.'s matting Laplacian of a photo (N=1, 3,H,W in 0..1; 3×3 windows), matrix-free:
    the per-window inverses are computed once, then `product(v)` is L·v for any C,H,W `v`."""

    def __init__(self, photo: torch.Tensor, eps: float = MATTING_EPS, radius: int = 1):
        if photo.dim() != 4 or photo.shape[:2] != (1, 3) or min(photo.shape[2:]) < 2 * radius + 1:
            raise TextureNetsError(f"the matting Laplacian takes one RGB photo of at least {2 * radius + 1} "
                                   f"pixels a side, got a tensor of shape {tuple(photo.shape)}")
        self.radius, self.size = radius, (2 * radius + 1) ** 2
        guide = photo[0].double()  # 3,H,W: the windows' statistics need the precision
        self.guide = guide
        self.mean = self._window_mean(guide)  # 3,h,w at the windows' centres (inside the photo)
        products = (guide.unsqueeze(0) * guide.unsqueeze(1)).flatten(0, 1)
        sigma = self._window_mean(products).view(3, 3, *self.mean.shape[1:]) - \
            self.mean.unsqueeze(0) * self.mean.unsqueeze(1)
        eye = torch.eye(3, dtype=guide.dtype) * (eps / self.size)
        self.inverse = torch.linalg.inv(sigma.permute(2, 3, 0, 1) + eye)  # h,w,3,3

    def _window_mean(self, x: torch.Tensor) -> torch.Tensor:
        """The mean over each full window, at the windows' centres: C,H-2r,W-2r."""
        return F.avg_pool2d(x.unsqueeze(0), 2 * self.radius + 1, stride=1).squeeze(0)

    def _scatter(self, per_window: torch.Tensor) -> torch.Tensor:
        """Σ over the windows covering each pixel of a per-window quantity (C,h,w → C,H,W)."""
        r = self.radius
        ones = torch.ones(per_window.shape[0], 1, 2 * r + 1, 2 * r + 1, dtype=per_window.dtype)
        return F.conv_transpose2d(per_window.unsqueeze(0), ones, groups=per_window.shape[0]).squeeze(0)

    def product(self, v: torch.Tensor) -> torch.Tensor:
        """L·v for C,H,W `v` (each channel on its own), differentiable in `v`."""
        v = v.double()
        guide, mean = self.guide, self.mean
        v_mean = self._window_mean(v)  # C,h,w
        cross = self._window_mean((v.unsqueeze(1) * guide.unsqueeze(0)).flatten(0, 1)).view(v.shape[0], 3,
                                                                                            *mean.shape[1:])
        cov = cross - v_mean.unsqueeze(1) * mean.unsqueeze(0)  # C,3,h,w
        a = torch.einsum("hwij,cjhw->cihw", self.inverse, cov)  # C,3,h,w
        count = self._scatter(torch.ones_like(v_mean[:1]))  # windows covering each pixel
        offset = v_mean - (a * mean.unsqueeze(0)).sum(1)  # C,h,w
        return count * v - self._scatter(offset) - (self._scatter(a.flatten(0, 1)).view(v.shape[0], 3, *v.shape[1:])
                                                     * guide.unsqueeze(0)).sum(1)

    def energy(self, picture: torch.Tensor) -> torch.Tensor:
        """Σ_c V_cᵀ L V_c / pixels of a C,H,W (or 1,C,H,W) picture: 0 when it is, in every window, an
        affine function of the photo's colours."""
        v = picture[0] if picture.dim() == 4 else picture
        return (v.double() * self.product(v)).sum() / (v.shape[1] * v.shape[2])
