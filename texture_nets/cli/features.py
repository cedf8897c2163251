"""`texture-nets features`: what VGG-19 sees in a picture (activation maps and Gram matrices)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from texture_nets.cli.common import check_vgg_memory, fail, pictures_judged_by_memory
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.files import check_outputs_spare_inputs
from texture_nets.core.images import photo_batch, save_image_atomic
from texture_nets.core.losses import DEFAULT_STYLE_LAYERS
from texture_nets.core.settings import comma_list
from texture_nets.core.vgg import VGG19Features, check_picture_side, default_vgg_weights
from texture_nets.inference.features import activation_grid, gram_heatmaps


def features_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="texture-nets features", allow_abbrev=False,
        description="What VGG-19 sees in a picture: the strongest activation maps of each layer as a grid, "
                    "and each layer's Gram matrix (the style statistic) as a heat map.")
    parser.add_argument("--input", required=True, help="image file")
    parser.add_argument("--layers", type=comma_list(str), default=list(DEFAULT_STYLE_LAYERS), metavar="A,B,...",
                        help=f"VGG-19 layers (default: the style layers, {','.join(DEFAULT_STYLE_LAYERS)})")
    parser.add_argument("--output", help="the activation grid (default: <stem>_features.png); the Gram heat "
                                         "maps go next to it as <output stem>_gram.png")
    parser.add_argument("--size", type=int, default=512, help="resize so the longer side is SIZE (default: 512)")
    parser.add_argument("--top", type=int, default=8, help="activation maps per layer, strongest first (default: 8)")
    parser.add_argument("--gram_channels", type=int, default=64,
                        help="channels shown in each Gram heat map, strongest first (default: 64)")
    parser.add_argument("--vgg_weights", help="VGG-19 weights (as for training; default: "
                                              "$TEXTURE_NETS_VGG_WEIGHTS, else 'imagenet')")
    parser.add_argument("--pooling", choices=("max", "avg"), default="max", help="VGG pooling (default: max)")
    return parser


def features_main(argv: list[str] | None = None) -> int:
    """Entry point of `texture-nets features`; returns the exit status."""
    args = features_parser().parse_args(argv)
    with pictures_judged_by_memory():
        return _features(args)


def _features(args: argparse.Namespace) -> int:
    """Write the activation grid and Gram heatmaps of args.input; one line and status 2 on a user error."""
    try:
        if args.size < 16 or args.top < 1 or args.gram_channels < 1:
            raise TextureNetsError("--size must be ≥ 16, --top and --gram_channels ≥ 1")
        if not args.layers:
            raise TextureNetsError("--layers is empty: name VGG-19 layers, e.g. relu1_1,relu3_1")
        source = Path(args.input)
        grid_path = Path(args.output) if args.output else Path(f"{source.stem}_features.png")
        gram_path = grid_path.with_name(f"{grid_path.stem}_gram.png")
        check_outputs_spare_inputs([(source, grid_path), (source, gram_path)])
        check_picture_side(*check_vgg_memory(source, args.size, torch.device("cpu"), "showing the activations of"),
                           args.layers, str(source), "pass a larger --size or crop the picture")
        vgg = VGG19Features(args.layers, weights=default_vgg_weights(args.vgg_weights), pooling=args.pooling)
        photo = photo_batch(source, args.size)
        with torch.no_grad():
            feats = vgg(photo)
        feats = {layer: feats[layer] for layer in args.layers}
        print(save_image_atomic(activation_grid(feats, top=args.top), grid_path))
        print(save_image_atomic(gram_heatmaps(feats, channels=args.gram_channels), gram_path))
        return 0
    except (TextureNetsError, OSError) as exc:
        return fail("texture-nets features", exc)
    except MemoryError:  # the estimates err high, but the memory can go to another program meanwhile
        return fail("texture-nets features", "out of memory: lower --size")
