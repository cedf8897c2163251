"""Every generator architecture by name: build one from a checkpoint's constructor arguments."""

from __future__ import annotations

from dataclasses import fields

from torch import nn

from texture_nets.core.pyramid import GeneratorConfig, TextureNetwork
from texture_nets.core.residual import ResidualConfig, ResidualNetwork


def build_generator(arch: str, model: dict) -> nn.Module:
    """A generator of architecture `arch` ('pyramid' or 'residual') from its constructor arguments."""
    classes = {"pyramid": (GeneratorConfig, TextureNetwork), "residual": (ResidualConfig, ResidualNetwork)}
    if arch not in classes:
        raise ValueError(f"unknown generator architecture {arch!r} (known: {', '.join(classes)})")
    config_class, network_class = classes[arch]
    return network_class(config_class(**model))


def config_fields(arch: str) -> set[str]:
    """Constructor argument names of architecture `arch` (to validate checkpoints)."""
    return {f.name for f in fields({"pyramid": GeneratorConfig, "residual": ResidualConfig}[arch])}
