"""Distillation: one network of several styles learns from trained single-style networks.

Each step trains one style, in turn: the teacher of that style stylizes the step's crops with the
step's noise, and the student (the same photos, the same noise, that style's scale and shift in every
normalisation: conditional instance norm, Dumoulin et al. 2017) is pulled towards its picture. No VGG
runs, so a step costs a fraction of a perceptual one. Dumoulin et al. train their network against the
perceptual loss of every style directly; matching networks that already beat the paper's models
keeps their look and costs far less on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from texture_nets.core.checkpoint import load_generator, resolve_model
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import file_sha256
from texture_nets.core.losses import LossTerms


class DistillationLoss(nn.Module):
    """The mean squared distance between the student's picture and its teacher's, per style."""

    def __init__(self, teachers: list[nn.Module]):
        super().__init__()
        self.teachers = nn.ModuleList(teachers).eval().requires_grad_(False)

    def forward(self, output: torch.Tensor, images: torch.Tensor, *, noise: list[torch.Tensor], style: int,
                batch_mean=None) -> LossTerms:
        """LossTerms whose total is the distance of `output` from teacher `style`'s picture of
        `images` with the unit `noise`, both at their networks' training noise factor."""
        with torch.no_grad():
            target = self.teachers[style](images, noise=noise)
        distance = F.mse_loss(output.float(), target.float())
        zero = distance.detach().new_zeros(())
        return LossTerms(total=distance, content=zero, style=zero, tv=zero)

    def train(self, mode: bool = True) -> "DistillationLoss":
        """The teachers always run in eval mode."""
        super().train(mode)
        self.teachers.eval()
        return self


def load_teachers(names: list[str], num_scales: int, noise_channels: int) -> tuple[list[nn.Module], list[dict]]:
    """The teacher networks (checkpoint paths or shipped style names) and their provenance (name,
    file, sha256); each must take the student's noise (same scales and noise channels)."""
    teachers, info = [], []
    for name in names:
        path = resolve_model(name)
        teacher = load_generator(path)
        config = teacher.config
        if teacher.arch != "pyramid" or config.texture_only or teacher.num_styles != 1:
            raise TextureNetsError(f"teacher {path}: a single-style pyramid network that stylizes photos is needed")
        if (config.num_scales, config.noise_channels) != (num_scales, noise_channels):
            raise TextureNetsError(f"teacher {path} has {config.num_scales} scales and {config.noise_channels} noise "
                                   f"channels: set --num_scales {config.num_scales} --noise_channels "
                                   f"{config.noise_channels} so the student takes the same noise")
        teachers.append(teacher)
        info.append({"name": path.stem, "file": str(path), "sha256": file_sha256(path)})
    return teachers, info
