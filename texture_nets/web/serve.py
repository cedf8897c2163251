"""`texture-nets serve`: parse the options, check them, run the app under uvicorn."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from texture_nets.core.device import resolve_device
from texture_nets.core.errors import TextureNetsError
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
    p.add_argument("--checkpoint_dir", default="checkpoints",
                   help="your models, listed with the shipped styles; trained models go here (default: checkpoints)")
    p.add_argument("--data_root", default=".", help="training folders must lie inside this folder (default: .)")
    p.add_argument("--vgg_weights", help="VGG-19 weights for training (default: $TEXTURE_NETS_VGG_WEIGHTS, "
                                         "else 'imagenet')")
    p.add_argument("--cuda", action="store_true", help="stylize and train on the GPU")
    p.add_argument("--max_upload_mb", type=float, default=20.0, help="largest upload (default: 20 MB)")
    p.add_argument("--max_megapixels", type=float, default=50.0, help="largest decoded image (default: 50 MP)")
    p.add_argument("--max_concurrent", type=int, help="requests decoded and stylized at once (default: one per CPU "
                                                      "core, at most 4)")
    p.add_argument("--max_queue", type=int, help="requests waiting for their turn beyond those; more are refused "
                                                 "with 503 and Retry-After (default: 8 per concurrent request)")
    p.add_argument("--request_memory_gb", type=float, help="memory one request (a stylization, an optimisation, a "
                                                           "training job) may use: larger pictures are tiled or "
                                                           "refused (default: 60%% of the memory available at start, "
                                                           "shared by the concurrent requests and two jobs)")
    p.add_argument("--max_video_seconds", type=float, default=10.0,
                   help="longest clip /api/stylize_video takes (default: 10 s)")
    p.add_argument("--max_video_size", type=int, default=640,
                   help="longer side a clip's frames are stylized at, at most (default: 640 pixels)")
    p.add_argument("--viz_url", default="", help="a running Visdom server (e.g. http://localhost:8097): "
                                                 "training jobs report to it and the page links to them")
    p.add_argument("--no_shipped", action="store_true", help="list only --checkpoint_dir's models")
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
        if not Path(args.data_root).is_dir():
            raise TextureNetsError(f"--data_root {args.data_root} is not a folder")
        if args.viz_url:
            split_viz_url(args.viz_url)  # refused now, not at the first training request
        check_number("--max_megapixels", args.max_megapixels, 0, 10**6)  # NaN and inf too, before int()
        config = WebConfig(checkpoint_dir=args.checkpoint_dir, shipped=not args.no_shipped, data_root=args.data_root,
                           vgg_weights=default_vgg_weights(args.vgg_weights, os.environ),
                           device=resolve_device("cuda" if args.cuda else "cpu").type,
                           max_upload_mb=args.max_upload_mb, max_pixels=max(1, int(args.max_megapixels * 1e6)),
                           viz_url=args.viz_url.rstrip("/"), onnx_cache=str(onnx_cache_dir(os.environ)),
                           max_concurrent=args.max_concurrent, max_queue=args.max_queue,
                           request_memory_gb=args.request_memory_gb, max_video_seconds=args.max_video_seconds,
                           max_video_size=args.max_video_size).resolved()
        app = create_app(config)
    except TextureNetsError as exc:
        print(f"texture-nets serve: error: {exc}", file=sys.stderr)
        return 2
    print(f"texture_nets: http://{args.host}:{args.port}/  (API documentation: /docs; {config.limits_line()})",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
