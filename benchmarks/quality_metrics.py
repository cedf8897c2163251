"""Picture-quality measurements of benchmarks/quality.py, in one place (tested in
tests/test_quality_metrics.py). They live in benchmarks/, not in the package: only the benchmark
uses them; `texture_nets.losses` stays the training loss.

Images are N,3,H,W RGB tensors in 0..1 (sRGB-encoded, as read from a file); every function returns
one value per image (a float tensor of N), or per-channel statistics.

- The *classic* (unnormalised) perceptual losses of Gatys et al. / Johnson et al.: style = Σ over the
  style layers of mean((G(output) − G(style))²) with G = FᵀF/(C·H·W); content = mean((F − F_photo)²)
  at relu4_2. Raw VGG units: with the Caffe VGG-19 they are large (10³–10⁸) and dominated by the
  deep layers; the project's loss (texture_nets.losses) divides each term by its target's mean
  square instead.
- Recognisability: `edge_correlation` (Pearson correlation of the Sobel gradient magnitude of the
  photo's and the picture's luminance after a σ = 2 px Gaussian blur: are the photo's edges where
  they were?) and `luminance_correlation` (of the luminance after a σ = 6 px blur: is the light and
  dark layout kept?).
- Colour: mean and standard deviation of each CIELAB channel, `colour_distance` between two such
  statistics (mean absolute difference of the three means and three stds, in Lab units), and
  `contrast_ratio` (the picture's luminance std over the style image's: below 1 is flatter, "washed
  out", above 1 harsher).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)  # Rec. 601 weights on the encoded RGB values
D65_WHITE = (0.95047, 1.0, 1.08883)
RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423),
              (0.212671, 0.715160, 0.072169),
              (0.019334, 0.119193, 0.950227))


def gram(features: torch.Tensor) -> torch.Tensor:
    """N,C,H,W → N,C,C: FᵀF / (C·H·W), in float32 (the normalisation texture_nets.losses uses)."""
    n, c, h, w = features.shape
    flat = features.float().reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def gram_errors(features: dict[str, torch.Tensor], target_grams: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Both style losses from one Gram matrix per layer, per image (N each): the classic Σ_l
    mean((G_l − T_l)²), and the relative Σ_l mean((G_l − T_l)²) / mean(T_l²) (texture_nets.losses'
    style loss at unit weights)."""
    classic, relative = 0, 0
    for layer, target in target_grams.items():
        target = target.float()
        error = (gram(features[layer]) - target).pow(2).flatten(1).mean(1)
        classic = classic + error
        relative = relative + error / target.pow(2).mean().clamp_min(1e-12)
    return classic, relative


def classic_style_loss(features: dict[str, torch.Tensor], target_grams: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ over the layers of `target_grams` of the mean squared Gram difference, per image (N)."""
    return gram_errors(features, target_grams)[0]


def classic_content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two N,C,H,W activations, per image (N)."""
    return (features.float() - target.float()).pow(2).flatten(1).mean(1)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """N,3,H,W RGB → N,1,H,W luma (Rec. 601 weights), in 0..1."""
    weights = torch.tensor(LUMA, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    return (images.float() * weights).sum(1, keepdim=True)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of N,C,H,W (kernel radius ⌈3σ⌉, reflected borders); σ ≤ 0: unchanged."""
    if sigma <= 0:
        return images.float()
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=images.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    out = images.float()
    h, w = out.shape[2:]
    # reflect padding needs pad < size; replicate beyond that (tiny test images)
    mode = "reflect" if radius < min(h, w) else "replicate"
    out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode=mode), kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode=mode), kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return out


def sobel_magnitude(images: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude √(gx² + gy²) of N,1,H,W by the 3×3 Sobel operator (replicated borders)."""
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=images.device)
    kernels = torch.stack([gx, gx.t()]).unsqueeze(1)
    g = F.conv2d(F.pad(images.float(), (1, 1, 1, 1), mode="replicate"), kernels)
    return g.pow(2).sum(1, keepdim=True).sqrt()


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of two N,... tensors, per image (N); NaN where either is constant."""
    a, b = a.double().flatten(1), b.double().flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    denominator = (a.pow(2).sum(1) * b.pow(2).sum(1)).sqrt()
    r = (a * b).sum(1) / denominator
    return torch.where(denominator > 1e-12, r, torch.full_like(r, float("nan"))).float()


def edge_correlation(photo: torch.Tensor, picture: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Correlation of the Sobel gradient magnitudes of the two luminances after a σ-px blur (N)."""
    edges = [sobel_magnitude(gaussian_blur(luminance(x), sigma)) for x in (photo, picture)]
    return pearson(*edges)


def luminance_correlation(photo: torch.Tensor, picture: torch.Tensor, sigma: float = 6.0) -> torch.Tensor:
    """Correlation of the two luminances after a σ-px blur (N)."""
    return pearson(gaussian_blur(luminance(photo), sigma), gaussian_blur(luminance(picture), sigma))


def rgb_to_lab(images: torch.Tensor) -> torch.Tensor:
    """N,3,H,W sRGB in 0..1 → CIELAB (D65): L in 0..100, a and b roughly −128..127."""
    rgb = images.float().clamp(0, 1)
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    matrix = torch.tensor(RGB_TO_XYZ, dtype=torch.float32, device=images.device)
    xyz = torch.einsum("ij,njhw->nihw", matrix, linear)
    xyz = xyz / torch.tensor(D65_WHITE, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    delta = 6 / 29
    f = torch.where(xyz > delta ** 3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * delta ** 2) + 4 / 29)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def colour_stats(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image: 'mean' and 'std' (N,3) of the L, a, b channels, and 'luma_std' (N) of the luma."""
    lab = rgb_to_lab(images).flatten(2)
    return {"mean": lab.mean(2), "std": lab.std(2, unbiased=False),
            "luma_std": luminance(images).flatten(1).std(1, unbiased=False)}


def colour_distance(stats: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean absolute difference of the 3 Lab means and 3 Lab stds (Lab units), per image (N);
    `reference` (e.g. the style image's, N = 1) broadcasts."""
    diffs = torch.cat([(stats["mean"] - reference["mean"]).abs(), (stats["std"] - reference["std"]).abs()], dim=1)
    return diffs.mean(1)


def contrast_ratio(stats: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> torch.Tensor:
    """The images' luma std over the reference's (N): < 1 flatter than the reference, > 1 harsher."""
    return stats["luma_std"] / reference["luma_std"].clamp_min(1e-6)


def picture_metrics(photo: torch.Tensor, picture: torch.Tensor, style_stats: dict[str, torch.Tensor]) -> dict[str, float]:
    """The recognisability and colour figures of one picture (1,3,H,W) of its photo, as floats."""
    stats = colour_stats(picture)
    return {"edge_corr": float(edge_correlation(photo, picture)[0]),
            "lum_corr": float(luminance_correlation(photo, picture)[0]),
            "colour_distance": float(colour_distance(stats, style_stats)[0]),
            "contrast_ratio": float(contrast_ratio(stats, style_stats)[0]),
            "luma_std": float(stats["luma_std"][0]),
            **{f"lab_mean_{c}": float(stats["mean"][0, i]) for i, c in enumerate("Lab")},
            **{f"lab_std_{c}": float(stats["std"][0, i]) for i, c in enumerate("Lab")}}
