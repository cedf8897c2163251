"""VGG-19 feature extractor with named layers (conv1_1, relu1_1, … pool5), frozen, in eval mode.

Images enter in 0..1 RGB; the ImageNet normalisation happens inside. The network is trimmed after
the deepest layer in use, and its ReLUs are not in place, so a loss can read a conv output
(`conv4_2`) and the ReLU after it (`relu4_2`) without one overwriting the other.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from texture_nets.core.errors import TextureNetsError

ENV_VAR = "TEXTURE_NETS_VGG_WEIGHTS"


def default_vgg_weights(value: str | None, environ=None) -> str:
    """The weights a user asked for, else $TEXTURE_NETS_VGG_WEIGHTS, else torchvision's 'imagenet'.
    Called at the edges (command lines, one-call APIs), never deep inside."""
    environ = os.environ if environ is None else environ
    return value or environ.get(ENV_VAR) or "imagenet"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_CHANNELS = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                  512, 512, 512, 512, "M")  # configuration "E" of Simonyan & Zisserman


def vgg19_features() -> nn.Sequential:
    """A randomly initialised module laid out exactly like torchvision's vgg19().features
    (same indices, so the same state_dict keys), without building the 100M-parameter classifier."""
    layers: list[nn.Module] = []
    in_channels = 3
    for spec in VGG19_CHANNELS:
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_channels, spec, 3, padding=1), nn.ReLU(inplace=False)]
            in_channels = spec
    return nn.Sequential(*layers)


def layer_names() -> list[str]:
    """Names of the 37 modules of VGG-19's feature extractor, in order (conv1_1, relu1_1, … pool5)."""
    names, block, index = [], 1, 0
    for module in vgg19_features():
        if isinstance(module, nn.Conv2d):
            index += 1
            names.append(f"conv{block}_{index}")
        elif isinstance(module, nn.ReLU):
            names.append(f"relu{block}_{index}")
        else:
            names.append(f"pool{block}")
            block, index = block + 1, 0
    return names


LAYER_NAMES = tuple(layer_names())


def check_layers(layers) -> list[str]:
    """Return `layers` as a list, or raise a clear error naming an unknown layer and the valid ones."""
    layers = list(layers)
    unknown = [name for name in layers if name not in LAYER_NAMES]
    if unknown:
        raise TextureNetsError(f"unknown VGG-19 layer(s) {', '.join(unknown)}; valid names are "
                               f"{', '.join(LAYER_NAMES)}")
    return layers


def smallest_side(layers) -> int:
    """The shortest picture side, in pixels, that VGG-19 takes up to the deepest of `layers`: each
    2x2 pooling at or before it halves the side, and none may be left without a pixel
    (2**pools: 16 for relu5_x, 32 for pool5)."""
    depth = max((LAYER_NAMES.index(name) for name in check_layers(layers)), default=0)
    return 2 ** sum(name.startswith("pool") for name in LAYER_NAMES[:depth + 1])


def check_picture_side(width: int, height: int, layers, what: str, fix: str) -> None:
    """Refuse, before any VGG work, a width × height picture (`what`, e.g. its path) too thin for
    `layers` (see `smallest_side`), saying how to `fix` it; VGG itself would fail deep inside a
    pooling layer ("Output size is too small")."""
    need = smallest_side(layers)
    if min(width, height) < need:
        deepest = max(layers, key=LAYER_NAMES.index)
        raise TextureNetsError(f"{what} is {width}x{height} pixels: VGG-19 needs at least {need} pixels on each "
                               f"side to reach {deepest}; {fix}")


def load_vgg19_weights(weights: str) -> dict[str, torch.Tensor] | None:
    """State dict for vgg19().features from `weights`: 'imagenet', 'random' or a file path.

    'imagenet' is torchvision's VGG19_Weights.IMAGENET1K_V1 (downloaded on first use); a file may
    hold a state dict of vgg19().features (keys '0.weight' …) or of the whole vgg19 ('features.0.weight' …),
    in any float dtype; 'random' returns None (a randomly initialised VGG, for tests only).
    """
    if weights == "random":
        return None
    if weights == "imagenet":
        from torchvision.models import VGG19_Weights  # torchvision: slow to import, needed only for its VGG-19 download
        try:
            state = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
        except Exception as exc:  # offline: URLError, OSError, ... — all mean "no weights here"
            raise TextureNetsError(
                f"could not download torchvision's VGG-19 weights ({type(exc).__name__}: {exc}); offline, "
                f"point --vgg_weights PATH or the environment variable {ENV_VAR} at a local state_dict "
                f"of vgg19().features") from exc
    else:
        state = _load_state_file(Path(weights))
    if any(key.startswith("features.") for key in state):
        state = {key[len("features."):]: value for key, value in state.items() if key.startswith("features.")}
    expected = vgg19_features().state_dict()
    if set(state) != set(expected) or any(state[k].shape != v.shape for k, v in expected.items()):
        raise TextureNetsError(f"{weights}: not a VGG-19 state_dict (expected keys 0.weight … 34.bias "
                               f"of torchvision's vgg19().features with matching shapes)")
    return state


def _load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """torch.load a state dict safely (weights_only), turning every failure into a clear error."""
    if not path.is_file():
        raise TextureNetsError(f"VGG weights file not found: {path} (pass --vgg_weights PATH or set {ENV_VAR})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TextureNetsError(f"{path}: cannot read VGG weights ({exc.__class__.__name__}); "
                               f"expected a torch.save'd state_dict of vgg19().features") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TextureNetsError(f"{path}: not a state_dict of tensors")
    return state


class VGG19Features(nn.Module):
    """Frozen VGG-19 that returns the activations of named layers: `vgg(x) -> {name: tensor}`.

    layers: the names this extractor will be asked for; it keeps only the modules up to the deepest.
    weights: 'imagenet', 'random' or a path (see `load_vgg19_weights`); 'random' is always the same
    network (seeded), so runs that use it for testing are reproducible.
    pooling: 'max' (VGG's own) or 'avg' (Gatys et al. found average pooling gives smoother synthesis).
    """

    def __init__(self, layers, weights: str = "imagenet", pooling: str = "max"):
        super().__init__()
        self.layers = check_layers(layers)
        if not self.layers:
            raise TextureNetsError("no VGG layers requested")
        if pooling not in ("max", "avg"):
            raise TextureNetsError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        state = load_vgg19_weights(weights)
        with torch.random.fork_rng(devices=[]):  # 'random' is one fixed network, whatever the caller's RNG
            torch.manual_seed(0)
            features = vgg19_features()
        if state is not None:
            features.load_state_dict({k: v.float() for k, v in state.items()})
        depth = max(LAYER_NAMES.index(name) for name in self.layers) + 1
        modules = []
        for module in list(features)[:depth]:
            if isinstance(module, nn.MaxPool2d) and pooling == "avg":
                module = nn.AvgPool2d(2, 2)
            modules.append(module)
        self.features = nn.Sequential(*modules)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG19Features":
        """Always stay in eval mode: the extractor is a fixed measuring instrument."""
        return super().train(False)

    def forward(self, images: torch.Tensor, layers=None) -> dict[str, torch.Tensor]:
        """Activations of `layers` (default: all requested at construction) for N,3,H,W images in 0..1."""
        wanted = set(self.layers if layers is None else layers)
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        out = {}
        for name, module in zip(LAYER_NAMES, self.features):
            x = module(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        missing = wanted - set(out)
        if missing:
            raise ValueError(f"layers {sorted(missing)} were not requested when this extractor was built")
        return out
