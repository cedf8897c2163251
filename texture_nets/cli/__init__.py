"""The command lines: `texture-nets COMMAND` dispatches to one module per command.

    train     train.py / texture-nets-train    (cli/train.py)
    stylize   stylize.py / texture-nets-stylize (cli/stylize.py)
    features  VGG-19's view of a picture        (cli/features.py)
    download  the COCO 2017 photos              (cli/download.py)
    export    a trained network as ONNX         (cli/export.py)
    serve     the web app                       (web/serve.py, imported on use: FastAPI is an extra)

What they share (flags generated from a config dataclass, one-line errors and warnings) is in
cli/common.py. User errors end as one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import sys

from texture_nets.cli.download import download_main
from texture_nets.cli.export import export_main
from texture_nets.cli.features import features_main, features_parser
from texture_nets.cli.stylize import stylize_main, stylize_parser
from texture_nets.cli.train import resolve_train_config, train_main, train_parser
from texture_nets.inference.onnx_export import onnx_cache_dir

__all__ = ["main", "train_main", "stylize_main", "features_main", "download_main", "export_main", "train_parser",
           "stylize_parser", "features_parser", "resolve_train_config", "onnx_cache_dir"]


def _serve(argv: list[str]) -> int:
    from texture_nets.web import serve_main  # imported on use: FastAPI is an optional extra
    return serve_main(argv)


COMMANDS = {"train": ("train a texture network (train.py)", train_main),
            "stylize": ("stylize photos with a trained network or by optimisation (stylize.py)", stylize_main),
            "features": ("show VGG-19's activation maps and Gram matrices of a picture", features_main),
            "download": ("fetch COCO 2017 photos to train on (texture-nets download coco --limit 500)", download_main),
            "export": ("write a trained network as an ONNX model (texture-nets export mosaic mosaic.onnx)", export_main),
            "serve": ("the web app: stylize and train in the browser", _serve)}


def main(argv: list[str] | None = None) -> int:
    """Entry point of `texture-nets` / `python -m texture_nets`: one command, several tools."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]][1](argv[1:])
    asked = bool(argv) and argv[0] in ("-h", "--help")
    lines = [f"  {name:<9} {text}" for name, (text, _) in COMMANDS.items()]
    print("usage: texture-nets COMMAND [options]   (texture-nets COMMAND --help for its options)\n\ncommands:\n"
          + "\n".join(lines), file=sys.stdout if asked else sys.stderr)
    return 0 if asked else 2
