"""Photorealism of the stylize modes on held-out photos: how locally affine in the photo's colours
(the matting-Laplacian energy), how much of its edges kept, how close to the style's colours.

    python benchmarks/photoreal.py [--styles candy,winter,lamplight] [--photos 16] [--size 512]
                                   [--gatys_photos 1] [--gatys_steps 300]

For each style (a trained network, found by name: the shipped styles, or `--checkpoint_dir`) and
each of the first `--photos` COCO val2017 photos at `--size` px (its style image left out where it
is one of them): the plain network, the network + the fast path (`--photorealistic`: the guided
filter, photo as the guide) and the network + `--preserve_colors`. With `--gatys_photos N`,
Gatys et al.'s optimisation of the first N photos, plain (`--gatys_steps`) and with Luan et al.'s
regulariser (`--optimize --photorealistic` with its defaults: from the style's colours, 60 steps),
timed. Figures per picture:

- energy: Σ_c V_cᵀ L V_c / pixels, L the photo's matting Laplacian (3×3 windows, ε 1e-7): 0 for a
  global affine colour change of the photo, lower is more locally affine (photographic);
- edge corr.: correlation of the Sobel gradient magnitudes of the picture's and the photo's luminance
  (quality_metrics.edge_correlation; 1: every edge in place);
- colour dist.: mean absolute difference of the Lab means and standard deviations to the style
  image's (quality_metrics.colour_distance; lower: the style's colours);
- style: the training style loss against the style image (relative Gram error, unit weights).

Times: the network and the fast path on one photo at 512² and 1 MP (median of 5 after a warm-up).
Results: benchmarks/results/photoreal_cpu.json and markdown tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import quality_metrics as qm  # noqa: E402
from quality import VGG, held_out_photos  # noqa: E402

from benchmarks.speed import machine  # noqa: E402
from texture_nets.core.checkpoint import SHIPPED_DIR, load_checkpoint, load_generator, resolve_model  # noqa: E402
from texture_nets.core.images import image_to_tensor, load_image, resize_longer_side  # noqa: E402
from texture_nets.core.settings import make_settings  # noqa: E402
from texture_nets.inference.engine import Engine  # noqa: E402
from texture_nets.inference.optimize import load_objective, stylize_optimized  # noqa: E402
from texture_nets.inference.options import PHOTOREAL_OPTIMIZE, OptimizeConfig, StylizeOptions  # noqa: E402
from texture_nets.inference.photoreal import MattingLaplacian, photographic  # noqa: E402
from texture_nets.training.config import TrainConfig  # noqa: E402
from texture_nets.training.run import build_criterion  # noqa: E402

MODES = {"plain": StylizeOptions(seed=0), "fast path": StylizeOptions(seed=0, photorealistic=True),
         "preserve_colors": StylizeOptions(seed=0, preserve_colors="luminance")}
SCORE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def style_image_of(name: str, checkpoint_dir: Path) -> Path:
    """The style image a checkpoint was trained on (its recipe's texture), found under ../shared."""
    checkpoint = load_checkpoint(resolve_model(name, checkpoint_dir))
    texture = checkpoint["train"]["texture"][0]
    path = Path(texture) if Path(texture).is_absolute() else ROOT / texture
    if not path.is_file():
        raise SystemExit(f"{name}: its style image {texture} is not here")
    return path.resolve()


class Measures:
    """Every figure of a picture against its photo and one style image."""

    def __init__(self, style_path: Path, size: int):
        config = TrainConfig(texture=[str(style_path)], style_size=size, vgg_weights=str(VGG), tv_weight=0.0,
                             style_layers=SCORE_LAYERS, style_weights=[1.0] * len(SCORE_LAYERS))
        self.criterion, _ = build_criterion(config, torch.device("cpu"))
        self.targets = self.criterion.style_targets(0)
        style = image_to_tensor(resize_longer_side(load_image(style_path), size)).unsqueeze(0)
        self.style_stats = qm.colour_stats(style)

    @torch.no_grad()
    def __call__(self, picture: torch.Tensor, photo: torch.Tensor, laplacian: MattingLaplacian) -> dict:
        _, style = qm.gram_errors(self.criterion.vgg(picture, SCORE_LAYERS), self.targets)
        return {"energy": float(laplacian.energy(picture)), "edge_corr": float(qm.edge_correlation(photo, picture)[0]),
                "colour_distance": float(qm.colour_distance(qm.colour_stats(picture), self.style_stats)[0]),
                "style": float(style[0])}


def timed(function, repeats: int = 5) -> float:
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def speed_rows(engine: Engine) -> list[dict]:
    """The network's time and the fast path's own time (the guided filter and the colour map on the
    network's output), each the median of 5: timed apart, the fast path's share does not drown in
    the network's ±20 % scatter on this VM."""
    rows = []
    options = StylizeOptions()
    for label, (height, width) in (("512x512", (512, 512)), ("1 MP (1152x864)", (864, 1152))):
        photo = F.interpolate(torch.rand(1, 3, 24, 32), size=(height, width), mode="bilinear")
        with torch.inference_mode():
            network = timed(lambda: engine.stylize(photo))
            out = engine.stylize(photo)
            fast = timed(lambda: photographic(photo, out, options.photoreal_radius, options.photoreal_eps))
        rows.append({"size": label, "network_s": network, "fast_path_s": fast, "fast_path_share": fast / network})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", default="candy,winter,lamplight")
    parser.add_argument("--checkpoint_dir", default=str(SHIPPED_DIR))
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--gatys_photos", type=int, default=0)
    parser.add_argument("--gatys_steps", type=int, default=300)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "photoreal_cpu.json"))
    parser.add_argument("--only_times", action="store_true", help="measure the times again into --out's results")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.only_times:
        results = json.loads(Path(args.out).read_text())
        for name in args.styles.split(","):
            engine = Engine.load(load_generator(resolve_model(name, Path(args.checkpoint_dir))), MODES["plain"])
            results["styles"][name]["times"] = speed_rows(engine)
        results["times_machine"] = machine()
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        return
    results = {"machine": machine(), "photos": args.photos, "size": args.size, "styles": {}}
    for name in args.styles.split(","):
        style_path = style_image_of(name, Path(args.checkpoint_dir))
        measures = Measures(style_path, args.size)
        generator = load_generator(resolve_model(name, Path(args.checkpoint_dir)))
        engines = {mode: Engine.load(generator, options) for mode, options in MODES.items()}
        rows = {mode: [] for mode in MODES}
        photos = held_out_photos(args.photos, args.size, frozenset({style_path}))
        for index, (_, photo) in enumerate(photos):
            laplacian = MattingLaplacian(photo)
            for mode, engine in engines.items():
                with torch.inference_mode():
                    picture = engine.stylize(photo)
                rows[mode].append(measures(picture, photo, laplacian))
            if index < args.gatys_photos:  # stylize.py --optimize [--photorealistic], their defaults
                ways = (("Gatys", {"steps": args.gatys_steps}), ("Gatys + regulariser", PHOTOREAL_OPTIMIZE))
                for mode, given in ways:
                    given = {"style": [str(style_path)], "vgg_weights": str(VGG), **given}
                    config = make_settings(OptimizeConfig, given)
                    criterion, styles = load_objective(config)
                    started = time.perf_counter()
                    picture = stylize_optimized(criterion, photo, styles, photoreal_weight=config.photoreal_weight,
                                                steps=config.steps, init=config.init, optimizer=config.optimizer,
                                                learning_rate=config.learning_rate)
                    row = measures(picture.detach(), photo, laplacian)
                    row["seconds"] = time.perf_counter() - started
                    rows.setdefault(mode, []).append(row)
        results["styles"][name] = {mode: {key: statistics.fmean(r[key] for r in mode_rows) for key in mode_rows[0]}
                                   | {"n": len(mode_rows)} for mode, mode_rows in rows.items()}
        results["styles"][name]["times"] = speed_rows(engines["plain"])
        print(markdown_style(name, results["styles"][name]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


def markdown_style(name: str, result: dict) -> str:
    """One style's tables as benchmarks/README.md shows them: the figures, and energy and colour
    distance against the plain network's."""
    plain = result["plain"]
    lines = [f"\n**{name}**\n", "| mode | photos | energy (×10⁻³) | vs plain | edge corr. | colour dist. | vs plain | "
             "style loss | seconds |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, m in result.items():
        if mode == "times":
            continue
        seconds = f"{m['seconds']:.0f}" if "seconds" in m else ""
        lines.append(f"| {mode} | {m['n']} | {m['energy'] * 1e3:.3f} | {m['energy'] / plain['energy']:.3f}× | "
                     f"{m['edge_corr']:.3f} | {m['colour_distance']:.2f} | "
                     f"{m['colour_distance'] / plain['colour_distance']:.2f}× | {m['style']:.3f} | {seconds} |")
    lines += ["", "| size | network (s) | fast path (s) | fast path's share |", "|---|---:|---:|---:|"]
    lines += [f"| {t['size']} | {t['network_s']:.3f} | {t['fast_path_s']:.3f} | {t['fast_path_share']:.0%} |"
              for t in result["times"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
