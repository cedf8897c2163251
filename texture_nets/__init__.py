"""texture_nets: feed-forward texture networks (Ulyanov et al. 2016, 2017) in PyTorch.

Train a multi-scale generator per style against VGG-19 perceptual losses, then stylize any photo
in one forward pass::

    from texture_nets import stylize
    stylize("photo.jpg", "mosaic").save("out.jpg")   # a checkpoint file, or a shipped style's name

Optimisation-based stylization (Gatys et al.) on the same loss: `optimize` (one call) and
`stylize_optimized` (tensors, a criterion you keep); colour preservation: `texture_nets.colors`;
activation maps and Gram heat maps: `texture_nets.features`. Videos::

    from texture_nets import stylize_video
    stylize_video("clip.mp4", "clip_mosaic.mp4", "mosaic")   # temporal="flow": noise and strokes follow the scene
"""

__version__ = "0.1.0"

from .checkpoint import load_checkpoint, load_generator, save_checkpoint  # noqa: E402
from .config import LossConfig, OptimizeConfig, TrainConfig  # noqa: E402
from .errors import TextureNetsError  # noqa: E402
from .generator import GeneratorConfig, TextureNetwork  # noqa: E402
from .losses import PerceptualLoss, gram_matrix  # noqa: E402
from .optimize import optimize, optimize_image, stylize_optimized  # noqa: E402
from .stylize import stylize, stylize_tensor  # noqa: E402
from .training import run_training  # noqa: E402
from .video import stylize_video  # noqa: E402
from .vgg import VGG19Features  # noqa: E402

__all__ = ["TextureNetwork", "GeneratorConfig", "VGG19Features", "PerceptualLoss", "gram_matrix", "TrainConfig",
           "run_training", "stylize", "stylize_tensor", "load_checkpoint", "load_generator", "save_checkpoint",
           "TextureNetsError", "__version__", "LossConfig", "OptimizeConfig", "optimize", "optimize_image", "stylize_optimized",
           "stylize_video"]
