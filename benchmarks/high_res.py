#!/usr/bin/env python
"""A 7680×4320 (8K UHD) stylization through the command line, tiled, with its peak memory.

    python benchmarks/high_res.py [--model texture_nets/styles/mosaic.pt] [--tile 1024] [--size 7680x4320]

Makes the photo (scikit-image's astronaut, enlarged; a random-weight default generator when no
--model is given: speed and memory do not depend on the weights), runs `stylize.py` in a child
process and reports its wall time and peak resident memory (getrusage of the child, which counts
everything it touched: Python, PyTorch, the decoded photo and the written picture). Also the
memory a one-pass stylization would need by stylize.py's own estimate. Writes
benchmarks/results/high_res_<size>.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_photo(path: Path, width: int, height: int) -> None:
    from PIL import Image
    from skimage import data
    Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC).save(path, quality=92)


def make_model(path: Path) -> None:
    import torch

    from texture_nets.core.checkpoint import make_checkpoint, save_checkpoint
    from texture_nets.training.config import TrainConfig
    from texture_nets.training.run import make_generator
    config = TrainConfig(texture=["none.jpg"], data_dir="none")
    torch.manual_seed(0)
    save_checkpoint(make_checkpoint(make_generator(config), style={"name": "random"}, train=config.to_dict(),
                                    step=0, losses={}), path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint (default: a random-weight default generator)")
    parser.add_argument("--size", default="7680x4320")
    parser.add_argument("--tile", default="1024", help="tile size, or 'none' for one pass")
    parser.add_argument("--engine", default="auto")
    args = parser.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        photo, out = folder / "photo.jpg", folder / "out.jpg"
        make_photo(photo, width, height)
        model = args.model or str(folder / "random.pt")
        if not args.model:
            make_model(Path(model))
        command = [sys.executable, str(ROOT / "stylize.py"), "--model", model, "--input", str(photo),
                   "--output", str(out), "--engine", args.engine]
        if args.tile != "none":
            command += ["--tile", args.tile]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        # Linux carries the parent's RSS at fork into a child's ru_maxrss, so this is max(this process
        # at fork, the child's own peak); this process holds a few hundred MB, far below the figure
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        from PIL import Image
        with Image.open(out) as image:
            assert image.size == (width, height), image.size
        from texture_nets.core.checkpoint import load_generator
        from texture_nets.inference.engine import untiled_bytes
        estimate = untiled_bytes(load_generator(model), height, width) / 2**30
    result = {"size": args.size, "tile": args.tile, "engine": args.engine, "seconds": round(seconds, 1),
              "peak_rss_gib": round(peak_gib, 2), "one_pass_estimate_gib": round(estimate, 1),
              "command": " ".join(Path(c).name if c.startswith(str(folder)) else c for c in command)}
    import platform

    import torch
    result["machine"] = {"cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
                         "platform": platform.platform()}
    print(json.dumps(result, indent=1))
    output = ROOT / "benchmarks" / "results" / f"high_res_{args.size}_tile{args.tile}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
