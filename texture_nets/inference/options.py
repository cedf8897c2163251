"""Options of the inference commands as dataclasses: what a stylization takes (StylizeOptions), how the
generator runs (EngineOptions), a clip's extras (VideoOptions), Gatys et al.'s optimisation
(OptimizeConfig). stylize.py's flags are generated from their fields (cli/common.py), and the web
app reads the same defaults and checks."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from texture_nets.core.checkpoint import MAX_NOISE_FACTOR
from texture_nets.core.colors import METHODS
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import MAX_STYLE_SIDE, MIN_TILE, check_size
from texture_nets.core.losses import LossConfig
from texture_nets.core.settings import setting
from texture_nets.inference.photoreal import GUIDE_EPS, GUIDE_RADIUS, check_guide
from texture_nets.inference.temporal import DEFAULT_TEMPORAL_WEIGHT, TEMPORAL_MODES, check_temporal

DEFAULT_PHOTOREAL_WEIGHT = 1e4  # Luan et al.'s value; lower weights let the style photo's scenery through
# What `--optimize --photorealistic` changes unless given: the regulariser on, and a start from the
# photo in the style's colours (no matting energy, the style's palette at step 0), from which a few
# dozen L-BFGS steps suffice (docs/stylize.md).
PHOTOREAL_OPTIMIZE = {"photoreal_weight": DEFAULT_PHOTOREAL_WEIGHT, "init": "colors", "steps": 60}


@dataclass
class OptimizeConfig(LossConfig):
    """Optimisation-based stylization (Gatys et al.): the loss settings shared with training, and how
    the pixels are optimised. Parsed by `stylize.py --optimize`."""

    style: list[str] = setting([], "with --optimize: a style image; repeat the flag to blend several (with "
                                   "--style_blend). With --model and a network of several styles: the style to use "
                                   "(NAME), or a blend of them (NAME=WEIGHT,NAME=WEIGHT)", append=True)
    steps: int = setting(300, "optimiser iterations (L-BFGS: iterations, not loss evaluations; 60 with "
                              "--photorealistic)")
    optimizer: str = setting("lbfgs", "'lbfgs' (L-BFGS-B with pixels bounded to 0..1, Gatys et al.'s choice) or "
                                      "'adam' (Adam on the pixels, clamped to 0..1 after each step)",
                             choices=("lbfgs", "adam"))
    learning_rate: float = setting(0.02, "with --optimizer adam: the step size on pixels in 0..1")
    init: str = setting("content", "start from the photo ('content'), from uniform noise ('noise') or from the "
                                   "photo recoloured to the (first) style image's colour mean and covariance "
                                   "('colors'; the default with --photorealistic)",
                        choices=("content", "noise", "colors"))
    photoreal_weight: float = setting(0.0, "weight of Luan et al.'s photorealism regulariser: the matting-Laplacian "
                                           "energy of the output given the photo (0: off; --photorealistic alone: "
                                           f"{DEFAULT_PHOTOREAL_WEIGHT:g})")
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
        if self.photoreal_weight < 0:
            raise TextureNetsError(f"photoreal_weight must be ≥ 0, got {self.photoreal_weight}")
        if self.save_every < 0:
            raise TextureNetsError(f"save_every must be ≥ 0, got {self.save_every}")
        return self


ENGINES = ("auto", "torch", "onnx")

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

SEED_LIMIT = 2**63  # noise seeds are in [0, SEED_LIMIT): numpy's generators (--temporal flow) take no negative one

def check_seed(seed: int | None, name: str = "seed") -> None:
    """Refuse a noise seed outside [0, SEED_LIMIT) (None, a random seed, is fine); `name`: how the
    caller calls it ('--seed')."""
    if seed is not None and not 0 <= seed < SEED_LIMIT:
        raise TextureNetsError(f"{name} must be in [0, 2**{SEED_LIMIT.bit_length() - 1}), got {seed}")

def check_noise_factor(noise_factor: float | None, name: str = "noise_factor") -> None:
    """Refuse a noise amplitude outside [0, MAX_NOISE_FACTOR] (NaN too; None, the network's own, is fine)."""
    if noise_factor is not None and not 0 <= noise_factor <= MAX_NOISE_FACTOR:
        raise TextureNetsError(f"{name} must be a number in [0, {MAX_NOISE_FACTOR:g}], got {noise_factor}")

def check_tile(tile: int | None, name: str = "--tile") -> None:
    """Refuse a tile side under MIN_TILE pixels (its halo would be most of it); None: no tiling asked."""
    if tile is not None and tile < MIN_TILE:
        raise TextureNetsError(f"{name} must be at least {MIN_TILE} pixels, got {tile}")
DEFAULT_BATCH = 4  # frames per forward pass: batching beyond 4 gains nothing measurable on the CPU


@dataclass
class StylizeOptions:
    """What the stylization of a picture takes besides the network (and a clip's frames alike)."""

    size: int | None = setting(None, "resize so the longer side is SIZE pixels (default: keep; with --optimize: 512)")
    noise_factor: float | None = setting(None, "noise amplitude: 0 = deterministic, larger = more texture variation "
                                               "(default: the value the network was trained with)")
    seed: int | None = setting(0, "seed of the noise, 0 ≤ seed < 2**63")
    preserve_colors: str | None = setting(None, "keep the photo's colours: 'luminance' (default when the flag is "
                                                "given: transfer the style's luminance only, recombined with the "
                                                "photo's chrominance) or, with --optimize, 'match' (recolour the "
                                                "style images to the photo's colour statistics first)",
                                          choices=METHODS, nargs="?", const="luminance")
    tile: int | None = setting(None, "stylize in tiles of TILE pixels (same picture, bounded memory; default: only "
                                     "when the picture would not fit in memory)")
    style: str = ""  # a network of several styles: one ('candy') or a blend ('mosaic=0.7,candy=0.3'); --style
    photorealistic: bool = setting(False, "keep the output photographic: fit it, window by window, as an affine "
                                          "function of the photo's colours (a fast guided filter, He et al.), then "
                                          "give it back the style's colour statistics, so the style's colours "
                                          "and light stay and its strokes go")
    photoreal_radius: int = setting(GUIDE_RADIUS, "with --photorealistic: the windows' radius in pixels (larger "
                                                  "keeps less of the strokes)")
    photoreal_eps: float = setting(GUIDE_EPS, "with --photorealistic: the fit's regularisation (larger: smoother, "
                                              "closer to a global colour change)")

    def check(self) -> None:
        """Refuse absurd values before any picture is decoded."""
        check_seed(self.seed, "--seed")
        check_size(self.size)
        check_noise_factor(self.noise_factor, "--noise_factor")
        check_tile(self.tile)
        parse_blend(self.style)
        check_guide(self.photoreal_radius, self.photoreal_eps)


@dataclass
class EngineOptions:
    """How a trained generator runs (inference/engine.py's prepare_generator)."""

    engine: str = setting("auto", "auto: ONNX Runtime on the CPU where installed (about 2x faster), else PyTorch",
                          choices=ENGINES)
    precision: str = setting("auto", "auto: the network in fp16 on CUDA, fp32 on the CPU; --optimize's VGG in bf16 "
                                     "where the device has bf16 units (AMX, Ampere), else fp32",
                             choices=("auto", *PRECISIONS))


@dataclass
class VideoOptions(StylizeOptions):
    """How a clip is stylized: the picture options, plus flicker control and the batch of frames."""

    temporal: str = setting("flow", "flicker control: 'off' (new noise every frame, as per-frame stylization), "
                                    "'noise' (one noise field for the clip), 'flow' (also carry the previous "
                                    "stylized frame along the input's optical flow where the flow is reliable)",
                            choices=TEMPORAL_MODES)
    temporal_weight: float = setting(DEFAULT_TEMPORAL_WEIGHT, "with --temporal flow: share of the carried frame, "
                                     "0 ≤ w < 1 (higher = steadier, lower = closer to each frame's own stylization)")
    batch_size: int = setting(DEFAULT_BATCH, "frames per forward pass")
    memory_limit: int | None = None  # bytes a batch may take before frames are tiled (None: no limit)
    max_frames: int | None = None  # refuse a clip with more frames than this, however its header reads

    def check(self) -> None:
        """Refuse absurd values before any frame is decoded (and before the output is opened)."""
        check_temporal(self.temporal, self.temporal_weight)
        if not 1 <= self.batch_size <= 256:
            raise TextureNetsError(f"--batch_size must be in 1..256 frames, got {self.batch_size}")
        super().check()


def parse_blend(text: str) -> dict[str, float]:
    """A style choice as {name: weight}: 'candy' is {'candy': 1}, 'mosaic=0.7,candy=0.3' a blend;
    "" none. Malformed, repeated, negative or non-finite weights are refused in one line (the names
    are checked against a network's own by core/layers.blend_weights)."""
    blend: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        name = name.strip()
        try:
            value = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise TextureNetsError(f"--style {text}: {weight.strip()!r} is not a number (use NAME or "
                                   f"NAME=WEIGHT,NAME=WEIGHT)") from None
        if not name or name in blend:
            raise TextureNetsError(f"--style {text}: each style once, by name (NAME or NAME=WEIGHT,NAME=WEIGHT)")
        if not 0 <= value < float("inf"):
            raise TextureNetsError(f"--style {text}: the weight of {name} must be finite and ≥ 0, got {weight.strip()}")
        blend[name] = value
    if text.strip() and not blend:
        raise TextureNetsError(f"--style {text!r} names no style")
    return blend
