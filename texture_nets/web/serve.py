"""`texture-nets serve`: parse the options, check them, run the app under uvicorn."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from texture_nets.core.device import resolve_device
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.settings import add_config_arguments, given_settings
from texture_nets.core.vgg import default_vgg_weights
from texture_nets.inference.onnx_export import onnx_cache_dir
from texture_nets.web.app import WebConfig, create_app
from texture_nets.web.limits import check_number
from texture_nets.web.train_routes import split_viz_url


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="texture-nets serve", allow_abbrev=False,
                                description="A local web page to stylize photos and train styles "
                                            "(and its JSON API, documented at /docs).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--vgg_weights", help="VGG-19 weights for training (default: $TEXTURE_NETS_VGG_WEIGHTS, "
                                         "else 'imagenet')")
    p.add_argument("--cuda", action="store_true", help="stylize and train on the GPU")
    p.add_argument("--max_megapixels", type=float, default=WebConfig.max_pixels / 1e6,
                   help=f"largest decoded image (default: {WebConfig.max_pixels / 1e6:g} MP)")
    p.add_argument("--no_shipped", action="store_true", help="list only --checkpoint_dir's models")
    add_config_arguments(p, WebConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        import fastapi  # noqa: F401
        import uvicorn  # the optional web extra, imported on first use
    except ImportError:
        print("texture-nets serve: error: the web app needs its extra: pip install -e \".[web]\"", file=sys.stderr)
        return 2
    try:
        if not 0 < args.port < 65536:
            raise TextureNetsError(f"--port must be in 1..65535, got {args.port}")
        check_number("--max_megapixels", args.max_megapixels, 0, 10**6)  # NaN and inf too, before int()
        given = given_settings(args, WebConfig)
        config = WebConfig(**{**given, "viz_url": given.get("viz_url", "").rstrip("/")}, shipped=not args.no_shipped,
                           vgg_weights=default_vgg_weights(args.vgg_weights, os.environ),
                           device=resolve_device("cuda" if args.cuda else "cpu").type,
                           max_pixels=max(1, int(args.max_megapixels * 1e6)),
                           onnx_cache=str(onnx_cache_dir(os.environ)))
        if not Path(config.data_root).is_dir():
            raise TextureNetsError(f"--data_root {config.data_root} is not a folder")
        if config.viz_url:
            split_viz_url(config.viz_url)  # refused now, not at the first training request
        config = config.resolved()
        app = create_app(config)
    except TextureNetsError as exc:
        print(f"texture-nets serve: error: {exc}", file=sys.stderr)
        return 2
    print(f"texture_nets: http://{args.host}:{args.port}/  (API documentation: /docs; {config.limits_line()})",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
