"""Options of the inference commands as dataclasses (their flags are generated from the fields)."""

from __future__ import annotations

from dataclasses import dataclass

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import MAX_STYLE_SIDE
from texture_nets.core.losses import LossConfig
from texture_nets.core.settings import setting


@dataclass
class OptimizeConfig(LossConfig):
    """Optimisation-based stylization (Gatys et al.): the loss settings shared with training, and how
    the pixels are optimised. Parsed by `stylize.py --optimize`."""

    style: list[str] = setting([], "style image; repeat the flag to blend several (with --style_blend)", append=True)
    steps: int = setting(300, "optimiser iterations (L-BFGS: iterations, not loss evaluations)")
    optimizer: str = setting("lbfgs", "'lbfgs' (L-BFGS-B with pixels bounded to 0..1, Gatys et al.'s choice) or "
                                   "'adam' (Adam on the pixels, clamped to 0..1 after each step)",
                          choices=("lbfgs", "adam"))
    learning_rate: float = setting(0.02, "with --optimizer adam: the step size on pixels in 0..1")
    init: str = setting("content", "start from the photo ('content') or from uniform noise ('noise')",
                     choices=("content", "noise"))
    save_every: int = setting(0, "also write the image every N steps, as <output>_<step>.<ext> (0: only the result)")

    def validate(self) -> "OptimizeConfig":
        """Check values a user could get wrong; raise TextureNetsError with what to fix."""
        self.check_loss(len(self.style), "--style")
        if self.steps < 1:
            raise TextureNetsError(f"steps must be ≥ 1, got {self.steps}")
        if self.steps > 10**6:
            raise TextureNetsError(f"steps must be at most 1000000, got {self.steps}")
        if self.style_size > MAX_STYLE_SIDE:
            raise TextureNetsError(f"style_size must be at most {MAX_STYLE_SIDE}, got {self.style_size}")
        if not self.learning_rate > 0:
            raise TextureNetsError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.save_every < 0:
            raise TextureNetsError(f"save_every must be ≥ 0, got {self.save_every}")
        return self
