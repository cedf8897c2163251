"""Optimisation-based stylization (Gatys et al. 2016): the pixels of one image are optimised against
the same `PerceptualLoss` that trains the feed-forward networks. Slow (hundreds of VGG forward and
backward passes per picture), but it is the quality reference the networks are measured against.

L-BFGS-B (SciPy) with the pixels bounded to 0..1, as Gatys et al. used it: bounds keep every
iterate a valid image. Clamping only at the end throws most of the gain away, and plain gradient
steps on pixels are badly conditioned for Gram losses (see ../shared/README.md).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .errors import TextureNetsError
from .losses import LossTerms, PerceptualLoss


def optimize_image(criterion: PerceptualLoss, content: torch.Tensor, *, steps: int = 300,
                   init: str | torch.Tensor = "content", seed: int = 0,
                   on_step: Callable[[int, LossTerms], None] | None = None) -> torch.Tensor:
    """The 1,3,H,W image in 0..1 that minimises `criterion(image, content)`, after `steps` L-BFGS-B
    iterations from `init` ('content', 'noise' or a tensor of the content's shape).

    on_step(iteration, losses) is called once per iteration (not per line-search evaluation)."""
    if steps < 1:
        raise TextureNetsError(f"steps must be ≥ 1, got {steps}")
    start = _initial_image(content, init, seed)
    shape, device = start.shape, content.device
    last: dict[str, LossTerms] = {}

    def loss_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        image = torch.from_numpy(flat.astype(np.float32)).view(shape).to(device).requires_grad_(True)
        terms = criterion(image, content)
        terms.total.backward()
        last["terms"] = terms
        return float(terms.total.detach()), image.grad.double().cpu().numpy().ravel()

    iteration = [0]

    def callback(_flat: np.ndarray) -> None:
        iteration[0] += 1
        if on_step is not None and "terms" in last:
            on_step(iteration[0], last["terms"])

    from scipy.optimize import Bounds, minimize  # imported here: only this mode needs SciPy
    result = minimize(loss_and_grad, start.double().cpu().numpy().ravel(), jac=True, method="L-BFGS-B",
                      bounds=Bounds(0.0, 1.0), callback=callback,
                      options={"maxiter": steps, "maxfun": steps * 2, "maxcor": 20, "ftol": 0.0, "gtol": 0.0})
    return torch.from_numpy(result.x.astype(np.float32)).view(shape).to(device)


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
    raise TextureNetsError(f"init must be 'content', 'noise' or an image, not {init!r}")
