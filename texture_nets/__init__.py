"""texture_nets: feed-forward texture networks (Ulyanov et al. 2016, 2017) in PyTorch.

Train a multi-scale generator per style against VGG-19 perceptual losses, then stylize any photo
in one forward pass::

    from texture_nets import stylize
    stylize("photo.jpg", "mosaic").save("out.jpg")   # a checkpoint file, or a shipped style's name

Optimisation-based stylization (Gatys et al.) on the same loss: `optimize` (one call) and
`stylize_optimized` (tensors, a criterion you keep); colour preservation: `texture_nets.core.colors`;
activation maps and Gram heat maps: `texture_nets.inference.features`. Videos::

    from texture_nets import stylize_video
    stylize_video("clip.mp4", "clip_mosaic.mp4", "mosaic")   # temporal="flow": noise and strokes follow the scene
"""

from texture_nets.core.checkpoint import load_checkpoint, load_generator, save_checkpoint
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.losses import LossConfig, PerceptualLoss, gram_matrix
from texture_nets.core.pyramid import GeneratorConfig, TextureNetwork
from texture_nets.core.residual import ResidualConfig, ResidualNetwork
from texture_nets.core.version import __version__
from texture_nets.core.vgg import VGG19Features
from texture_nets.inference.engine import stylize, stylize_tensor
from texture_nets.inference.optimize import optimize, optimize_image, stylize_optimized
from texture_nets.inference.options import OptimizeConfig
from texture_nets.inference.video import stylize_video
from texture_nets.training.config import TrainConfig
from texture_nets.training.run import run_training

__all__ = ["TextureNetwork", "GeneratorConfig", "ResidualNetwork", "ResidualConfig", "VGG19Features", "PerceptualLoss", "gram_matrix", "TrainConfig",
           "run_training", "stylize", "stylize_tensor", "load_checkpoint", "load_generator", "save_checkpoint",
           "TextureNetsError", "__version__", "LossConfig", "OptimizeConfig", "optimize", "optimize_image", "stylize_optimized",
           "stylize_video"]
