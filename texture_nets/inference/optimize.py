"""Optimisation-based stylization (Gatys et al. 2016): the pixels of one image are optimised against
the same `PerceptualLoss` that trains the feed-forward networks. Slow (hundreds of VGG forward and
backward passes per picture), but it is the quality reference the networks are measured against.

L-BFGS-B (SciPy) with the pixels bounded to 0..1 is the default, as Gatys et al. used it: bounds keep
every iterate a valid image. Clamping only at the end throws most of the gain away, and plain
gradient steps on pixels are badly conditioned for Gram losses (see ../shared/README.md); Adam, with
the pixels clamped after every step, is offered for comparison and for memory-bound cases.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import torch

from texture_nets.core import colors
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import load_style_image, photo_batch, tensor_to_image
from texture_nets.core.losses import LossTerms, PerceptualLoss
from texture_nets.core.precision import autocast, autocast_dtype, channels_last_for
from texture_nets.core.settings import make_settings
from texture_nets.core.vgg import check_picture_side, default_vgg_weights
from texture_nets.inference.options import OptimizeConfig
from texture_nets.inference.photoreal import MattingLaplacian

StepCallback = Callable[[int, LossTerms, torch.Tensor], None]


def optimize_image(criterion: PerceptualLoss, content: torch.Tensor, *, steps: int = 300,
                   init: str | torch.Tensor = "content", seed: int = 0, optimizer: str = "lbfgs",
                   learning_rate: float = 0.02, precision: str = "auto",
                   on_step: StepCallback | None = None) -> torch.Tensor:
    """The 1,3,H,W image in 0..1 that minimises `criterion(image, content)`, after `steps` iterations
    of `optimizer` ('lbfgs' or 'adam', the latter with `learning_rate`) from `init` ('content',
    'noise' or a tensor of the content's shape). `precision` (core/precision.py): the criterion
    runs under bf16 autocast where 'auto' finds bf16 units (AMX) or 'bf16' asks; the pixels, their
    gradient and the Gram matrices stay fp32.

    on_step(step, losses, image) is called once per iteration (not per L-BFGS line-search
    evaluation), with the losses of the last evaluation and the current image."""
    if steps < 1:
        raise TextureNetsError(f"steps must be ≥ 1, got {steps}")
    start = _initial_image(content, init, seed)
    dtype = _pixel_dtype(precision, content.device)

    def evaluate(image: torch.Tensor) -> LossTerms:
        with autocast(content.device, dtype):
            return criterion(image, content)

    if optimizer == "lbfgs":
        return _lbfgs(evaluate, content.device, start, steps, on_step)
    if optimizer == "adam":
        if not learning_rate > 0:
            raise TextureNetsError(f"learning_rate must be > 0, got {learning_rate}")
        return _adam(evaluate, start, steps, learning_rate, on_step)
    raise TextureNetsError(f"optimizer must be 'lbfgs' or 'adam', not {optimizer!r}")


def _lbfgs(evaluate: Callable[[torch.Tensor], LossTerms], device: torch.device, start: torch.Tensor, steps: int,
           on_step: StepCallback | None) -> torch.Tensor:
    """SciPy's L-BFGS-B on the flattened pixels, bounded to 0..1, in float64 on the host."""
    shape = start.shape
    last: dict[str, LossTerms] = {}

    def as_image(flat: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(flat.astype(np.float32)).view(shape).to(device)

    def loss_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        image = as_image(flat).requires_grad_(True)
        terms = evaluate(image)
        terms.total.backward()
        last["terms"] = _detached(terms)
        return float(terms.total.detach()), image.grad.double().cpu().numpy().ravel()

    iteration = [0]

    def callback(flat: np.ndarray) -> None:
        iteration[0] += 1
        if on_step is not None and "terms" in last:
            on_step(iteration[0], last["terms"], as_image(flat))

    from scipy.optimize import Bounds, minimize  # imported here: only this mode needs SciPy
    result = minimize(loss_and_grad, start.double().cpu().numpy().ravel(), jac=True, method="L-BFGS-B",
                      bounds=Bounds(0.0, 1.0), callback=callback,
                      options={"maxiter": steps, "maxfun": steps * 2, "maxcor": 20, "ftol": 0.0, "gtol": 0.0})
    return as_image(result.x)


def _adam(evaluate: Callable[[torch.Tensor], LossTerms], start: torch.Tensor, steps: int,
          learning_rate: float, on_step: StepCallback | None) -> torch.Tensor:
    """Adam on the pixels, projected back onto 0..1 after every step."""
    image = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=learning_rate)
    for step in range(1, steps + 1):
        optimizer.zero_grad(set_to_none=True)
        terms = evaluate(image)
        terms.total.backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0, 1)
        if on_step is not None:
            on_step(step, _detached(terms), image.detach())
    return image.detach()


def _pixel_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of an optimisation: as training's, except that 'auto' never picks fp16
    (pixels' gradients have no loss scaler here; fp16 must be asked for)."""
    dtype = autocast_dtype(precision, device)
    return None if precision == "auto" and dtype == torch.float16 else dtype


def _detached(terms: LossTerms) -> LossTerms:
    """The loss values without their graph (callbacks keep them; the graph would keep VGG's activations)."""
    return LossTerms(total=terms.total.detach(), content=terms.content.detach(), style=terms.style.detach(),
                     tv=terms.tv.detach(), style_layers={k: v.detach() for k, v in terms.style_layers.items()},
                     output_tv=terms.output_tv)


def _initial_image(content: torch.Tensor, init: str | torch.Tensor, seed: int) -> torch.Tensor:
    """The starting point of the optimisation, detached, in 0..1."""
    if isinstance(init, torch.Tensor):
        if init.shape != content.shape:
            raise TextureNetsError(f"init image has shape {tuple(init.shape)}, the content {tuple(content.shape)}")
        return init.detach().clamp(0, 1)
    if init == "content":
        return content.detach().clamp(0, 1)
    if init == "noise":
        rng = torch.Generator().manual_seed(seed)
        return torch.rand(content.shape, generator=rng).to(content.device)
    if init == "colors":
        raise TextureNetsError("init 'colors' needs the style images: stylize_optimized (or pass the image)")
    raise TextureNetsError(f"init must be 'content', 'noise', 'colors' or an image, not {init!r}")


class PhotorealLoss:
    """A criterion plus `weight` × the matting-Laplacian energy of the image given the photo: Luan et
    al. 2017's photorealism regulariser (photoreal.py; its gradient, 2·L·V, by autograd)."""

    def __init__(self, criterion: PerceptualLoss, photo: torch.Tensor, weight: float):
        self.criterion, self.weight = criterion, weight
        self.laplacian = MattingLaplacian(photo.detach().cpu())

    def __call__(self, image: torch.Tensor, content: torch.Tensor) -> LossTerms:
        terms = self.criterion(image, content)
        energy = self.laplacian.energy(image.cpu()).to(terms.total.device, terms.total.dtype)
        return replace(terms, total=terms.total + self.weight * energy)


def stylize_optimized(criterion: PerceptualLoss, content: torch.Tensor, styles: list[torch.Tensor],
                      blend: list[float] | None = None, *, preserve_colors: str | None = None,
                      photoreal_weight: float = 0.0, **options) -> torch.Tensor:
    """Gatys et al.'s stylization of a 1,3,H,W photo with one or more 1,3,h,w style images mixed by
    `blend` (loss = content + Σ blend_i·style_i), optionally keeping the photo's colours.

    preserve_colors 'luminance': the style's and the photo's luminance are optimised (the style's
    matched to the photo's mean and contrast), then recombined with the photo's chrominance;
    'match': the style images are first recoloured to the photo's colour statistics.
    photoreal_weight: Luan et al.'s regulariser at this weight (0: off), the photo as the guide.
    `options` go to `optimize_image` (steps, init, seed, optimizer, learning_rate, precision, on_step)."""
    if not 0 <= photoreal_weight < float("inf"):
        raise TextureNetsError(f"photoreal_weight must be a finite number ≥ 0, got {photoreal_weight}")
    method = colors.check_method(preserve_colors)
    target = content
    if method == "luminance":
        styles = [colors.match_luminance(style, content) for style in styles]
        target = colors.luminance(content)
        init, on_step = options.get("init"), options.get("on_step")
        if isinstance(init, torch.Tensor):
            options["init"] = colors.luminance(init)
        if on_step is not None:  # callers see the picture in the photo's colours, as it will come out
            options["on_step"] = lambda step, terms, image: on_step(step, terms, colors.combine_luminance(image, content))
    elif method == "match":
        styles = [colors.match_colors(style, content) for style in styles]
    criterion.set_style(styles, blend)
    if isinstance(options.get("init"), str) and options["init"] == "colors":  # a global colour map of the photo
        options["init"] = colors.match_colors(target, styles[0].to(target.device))
    dtype = _pixel_dtype(options.get("precision", "auto"), content.device)
    if channels_last_for(content.device, dtype, True)[0]:  # oneDNN's bf16 convolutions want NHWC
        criterion.vgg.to(memory_format=torch.channels_last)
    objective = PhotorealLoss(criterion, content, photoreal_weight) if photoreal_weight else criterion
    result = optimize_image(objective, target, **options)
    return colors.combine_luminance(result, content) if method == "luminance" else result


def load_objective(config, device: str | torch.device = "cpu") -> tuple[PerceptualLoss, list[torch.Tensor]]:
    """The loss an OptimizeConfig describes (VGG loaded once) and its style images, at style_size,
    on `device`: what `stylize_optimized` needs, reusable for many photos."""
    style_images = [load_style_image(path, config.style_size, config.style_scale)[0].to(device)
                    for path in config.style]
    return PerceptualLoss.from_config(config).to(device), style_images


def optimize(image, styles, *, size: int | None = 512, preserve_colors: str | None = None, seed: int = 0,
             device: str | torch.device = "cpu", precision: str = "auto", on_step: StepCallback | None = None,
             **settings):
    """Gatys et al.'s stylization of one photo (PIL image or file) with style image files, as a PIL
    image: the one-call counterpart of `texture_nets.stylize`. `settings` are OptimizeConfig's fields
    (style_weight, style_blend, steps, optimizer, init, style_layers, vgg_weights, ...); `size` is
    the photo's longer side (None: keep). vgg_weights defaults as on the command line:
    $TEXTURE_NETS_VGG_WEIGHTS, else torchvision's 'imagenet'."""
    style_paths = [styles] if isinstance(styles, str) or hasattr(styles, "__fspath__") else list(styles)
    settings["vgg_weights"] = default_vgg_weights(settings.get("vgg_weights"))
    config = make_settings(OptimizeConfig, {**settings, "style": [str(p) for p in style_paths]})
    content = photo_batch(image, size).to(device)
    check_picture_side(content.shape[3], content.shape[2], config.style_layers + config.content_layers,
                       "the photo", "pass a larger size or crop the photo")
    criterion, style_images = load_objective(config, device)
    result = stylize_optimized(criterion, content, style_images, config.style_blend or None,
                               preserve_colors=preserve_colors, steps=config.steps, init=config.init, seed=seed,
                               optimizer=config.optimizer, learning_rate=config.learning_rate, precision=precision,
                               on_step=on_step)
    return tensor_to_image(result)
