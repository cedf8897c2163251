"""`texture-nets export MODEL OUT.onnx`: a trained network as an ONNX model, for runtimes other than
this package's (ONNX Runtime in a browser, on a phone, from C++). Its inputs are listed in
docs/stylize.md and in the model's own metadata."""

from __future__ import annotations

import argparse
from pathlib import Path

from texture_nets.cli.common import fail
from texture_nets.core.checkpoint import DEFAULT_CHECKPOINT_DIR, load_generator, resolve_model
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.files import atomic_output, check_outputs_spare_inputs
from texture_nets.inference.onnx_export import export_onnx, exportable


def export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="texture-nets export", allow_abbrev=False,
                                     description="Export a trained network as an ONNX model (opset 17, dynamic "
                                                 "batch and size; inputs in docs/stylize.md).")
    parser.add_argument("model", help="checkpoint file, or a style name found in --checkpoint_dir or among the "
                                      "shipped styles")
    parser.add_argument("output", help="the .onnx file to write (an existing one is replaced)")
    parser.add_argument("--checkpoint_dir", default=DEFAULT_CHECKPOINT_DIR,
                        help=f"where MODEL names are looked up (default: {DEFAULT_CHECKPOINT_DIR})")
    return parser


def export_main(argv: list[str] | None = None) -> int:
    """Entry point of `texture-nets export`; returns the exit status."""
    args = export_parser().parse_args(argv)
    try:
        output = Path(args.output)
        if output.suffix.lower() != ".onnx":
            raise TextureNetsError(f"{output}: the output must be an .onnx file")
        path = resolve_model(args.model, args.checkpoint_dir)
        check_outputs_spare_inputs([(path, output)])
        generator = load_generator(path)
        if not exportable(generator):
            raise TextureNetsError(f"{path} synthesizes textures without a photo: export is for stylization networks")
        model = export_onnx(generator)
        with atomic_output(output) as tmp:
            tmp.write_bytes(model)
    except (TextureNetsError, OSError) as exc:
        return fail("texture-nets export", exc)
    styles = generator.style_names
    inputs = ["photo", "noise_factor", *(["style"] if generator.num_styles > 1 else []),
              *(f"noise{s}" for s in range(generator.config.num_scales if generator.config.noise_channels else 0))]
    print(f"{output}: inputs {', '.join(inputs)}; sides padded to multiples of {generator.multiple}"
          + (f"; styles {', '.join(styles)}" if styles else ""))
    return 0
