#!/usr/bin/env python
"""Quality of the shipped styles, measured with the loss they were trained with, side by side with
the Texture Networks paper's own released generators and (optionally) Gatys et al.'s optimisation.

    python benchmarks/quality.py                                  # every checkpoint + the four peers
    python benchmarks/quality.py --gatys ulyanov_mosaic,ulyanov_starry --gatys_photos 1   # the ceiling

Held-out photos: the first --photos images of COCO val2017 (sorted by file name), resized so the
longer side is --size (512). Every picture is scored alone with the training loss at unit weights:
style = Σ over relu1_1…relu5_1 of the relative Gram error, content = relative relu4_2 error (see
texture_nets/losses.py), both against the photo and the style image. The style image enters at the
style_size its checkpoint was trained with (never enlarged); a peer is scored against the same
target as our checkpoint of that style. Figures are means over the photos, seed 0 for all noise.

Peers (../shared/peers/ulyanov2016_t7, read with benchmarks/ulyanov_t7.py) run as their authors ran
them: noise factor 1, BatchNorm with per-image statistics. Gatys: L-BFGS-B from the photo, --gatys_steps
iterations, on the first --gatys_photos photos, minimising content_weight·content + style_weight·style
with the weights of that style's recipe (configs/styles/); a run with --gatys does only that and
writes its own JSON, which later runs read to compare all three on those photos (it is slow:
about 20 minutes per 512-px photo on 2 CPU cores).

Results: benchmarks/results/quality_cpu.json (and quality_gatys_cpu.json) and the markdown printed
(benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from texture_nets.checkpoint import load_checkpoint, generator_from_checkpoint  # noqa: E402
from texture_nets.config import TrainConfig, load_config_file  # noqa: E402
from texture_nets.data import find_images, image_to_tensor, load_image, tensor_to_image  # noqa: E402
from texture_nets.optimize import optimize_image  # noqa: E402
from texture_nets.stylize import resize_longer_side, stylize_tensor  # noqa: E402
from texture_nets.training import build_criterion  # noqa: E402

SHARED = ROOT.parent / "shared"
VGG = SHARED / "vgg19" / "vgg19_caffe_features_fp16.pth"
STYLES = SHARED / "data" / "styles"
VAL = SHARED / "data" / "coco" / "val2017"
RESULTS = ROOT / "benchmarks" / "results"
PEERS = SHARED / "peers" / "ulyanov2016_t7" / "stylization_models"
PEER_FILES = {"ulyanov_mosaic": "mosaic_style.t7", "pleades": "pleades_style.t7",
              "ulyanov_starry": "starry_style.t7", "turner": "turner_style.t7"}
SHIPPED = ["mosaic", "candy", "starry_night", "the_scream", "udnie", "wave",
           "ulyanov_mosaic", "pleades", "ulyanov_starry", "turner"]


def held_out_photos(count: int, size: int) -> list[tuple[str, torch.Tensor]]:
    """The first `count` val2017 photos (sorted), longer side `size`, as (name, 1,3,H,W in 0..1)."""
    files = find_images(VAL)[:count]
    return [(f.name, image_to_tensor(resize_longer_side(load_image(f), size)).unsqueeze(0)) for f in files]


def style_file(style: str) -> Path:
    """The style image of a shipped style."""
    matches = sorted(STYLES.glob(f"{style}.*"))
    if not matches:
        raise SystemExit(f"no style image for {style} in {STYLES}")
    return matches[0]


def scoring_loss(style: str, style_size: int, style_weight: float = 1.0, content_weight: float = 1.0):
    """The training loss for `style` at `style_size` (unit weights unless given), on the CPU."""
    config = TrainConfig(texture=[str(style_file(style))], style_size=style_size, vgg_weights=str(VGG),
                         style_weight=style_weight, content_weight=content_weight, tv_weight=0.0)
    criterion, _ = build_criterion(config, torch.device("cpu"))
    return criterion


@torch.no_grad()
def score(criterion, picture: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
    """Style and content loss of one stylized picture against its photo (unit weights)."""
    terms = criterion(picture, photo)
    return {"style": float(terms.style) / criterion.style_weight,
            "content": float(terms.content) / criterion.content_weight}


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean (and standard error) of each loss over the photos."""
    out = {}
    for key in ("style", "content"):
        values = [r[key] for r in rows]
        out[key] = statistics.fmean(values)
        out[f"{key}_sem"] = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return out


def recipe(style: str) -> dict:
    """The training settings of a shipped style (configs/styles/<style>.toml)."""
    return load_config_file(str(ROOT / "configs" / "styles" / f"{style}.toml"))


def ours(style: str, checkpoint_dir: Path):
    """Our checkpoint of `style`: (stylize function, its training config) or None if absent."""
    path = checkpoint_dir / f"{style}.pt"
    if not path.is_file():
        return None
    checkpoint = load_checkpoint(path)
    generator = generator_from_checkpoint(checkpoint, str(path))
    return (lambda photo: stylize_tensor(generator, photo, seed=0)), checkpoint["train"]


def peer(style: str):
    """The paper's released generator for `style`, or None."""
    if style not in PEER_FILES or not (PEERS / PEER_FILES[style]).is_file():
        return None
    from ulyanov_t7 import UlyanovT7
    network = UlyanovT7(PEERS / PEER_FILES[style])
    return lambda photo: network(photo, seed=0)


def evaluate(stylize, criterion, photos, keep: Path | None = None) -> list[dict[str, float]]:
    """Per-photo losses of one model; the first picture is saved to `keep` to look at."""
    rows = []
    for i, (_, photo) in enumerate(photos):
        picture = stylize(photo).float()
        if i == 0 and keep is not None:
            tensor_to_image(picture[0]).save(keep)
        rows.append(score(criterion, picture, photo))
    return rows


def gatys(style: str, photos, steps: int, keep: Path | None) -> dict:
    """Optimisation-based results on `photos` with the weights of the style's recipe, scored at unit
    weights: {photo name: losses}."""
    settings = recipe(style)
    objective = scoring_loss(style, settings["style_size"], settings["style_weight"], settings["content_weight"])
    rows = {}
    for i, (name, photo) in enumerate(photos):
        started = time.perf_counter()
        picture = optimize_image(objective, photo, steps=steps, init="content")
        rows[name] = {**score(objective, picture, photo), "seconds": time.perf_counter() - started}  # unit weights
        print(f"gatys {style} {name}: {rows[name]}", flush=True)
        if i == 0 and keep is not None:
            tensor_to_image(picture[0]).save(keep)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=16, help="held-out val2017 photos")
    parser.add_argument("--size", type=int, default=512, help="longer side of the photos")
    parser.add_argument("--styles", default=",".join(SHIPPED))
    parser.add_argument("--checkpoint_dir", default=str(ROOT / "checkpoints"))
    parser.add_argument("--gatys", default="", help="only optimise these styles with Gatys et al.'s method")
    parser.add_argument("--gatys_photos", type=int, default=1)
    parser.add_argument("--gatys_steps", type=int, default=300)
    parser.add_argument("--pictures", default="", help="folder for each model's first picture (to look at)")
    parser.add_argument("--update", action="store_true",
                        help="add (or redo) --styles in the existing --out instead of replacing it (same photos)")
    parser.add_argument("--out", default=str(RESULTS / "quality_cpu.json"))
    parser.add_argument("--gatys_out", default=str(RESULTS / "quality_gatys_cpu.json"))
    args = parser.parse_args()
    photos = held_out_photos(args.photos, args.size)
    pictures = Path(args.pictures) if args.pictures else None
    if pictures:
        pictures.mkdir(parents=True, exist_ok=True)
    if args.gatys:
        run_gatys(args, photos[:args.gatys_photos], pictures)
        return
    results = {"machine": machine(), "photos": [name for name, _ in photos], "size": args.size, "styles": {}}
    if args.update and Path(args.out).is_file():
        previous = json.loads(Path(args.out).read_text())
        if (previous["photos"], previous["size"]) != (results["photos"], results["size"]):
            raise SystemExit(f"--update: {args.out} was measured on other photos; run without --update")
        results["styles"] = previous["styles"]
    for style in [s for s in args.styles.split(",") if s]:
        mine = ours(style, Path(args.checkpoint_dir))
        style_size = mine[1]["style_size"] if mine else recipe(style)["style_size"]
        criterion = scoring_loss(style, style_size)
        entry = {"style_size": style_size, "models": {}}
        for label, stylize in {"texture_nets": mine[0] if mine else None, "ulyanov2016": peer(style)}.items():
            if stylize is None:
                continue
            started = time.perf_counter()
            rows = evaluate(stylize, criterion, photos, pictures / f"{style}_{label}.png" if pictures else None)
            entry["models"][label] = {**summarise(rows), "per_photo": dict(zip(results["photos"], rows))}
            print(f"{style:15s} {label:13s} style {entry['models'][label]['style']:.4f} "
                  f"content {entry['models'][label]['content']:.4f} ({time.perf_counter() - started:.0f} s)", flush=True)
        results["styles"][style] = entry
    shipped_first = {style: results["styles"][style] for style in SHIPPED if style in results["styles"]}
    results["styles"] = {**shipped_first, **results["styles"]}
    write_json(results, args.out)
    gatys_path = Path(args.gatys_out)
    print(markdown(results, json.loads(gatys_path.read_text()) if gatys_path.is_file() else None))


def run_gatys(args, photos, pictures: Path | None) -> None:
    """The --gatys run: optimise each style on `photos` and add the results to --gatys_out."""
    path = Path(args.gatys_out)
    results = json.loads(path.read_text()) if path.is_file() else {"machine": machine(), "size": args.size, "styles": {}}
    for style in args.gatys.split(","):
        settings = recipe(style)
        rows = gatys(style, photos, args.gatys_steps, pictures / f"{style}_gatys.png" if pictures else None)
        results["styles"][style] = {"steps": args.gatys_steps, "style_weight": settings["style_weight"],
                                    "content_weight": settings["content_weight"], "per_photo": rows}
        write_json(results, path)


def machine() -> dict:
    """What the figures were measured on."""
    return {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def write_json(results: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(results, indent=1), encoding="utf-8")


def markdown(results: dict, gatys_results: dict | None = None) -> str:
    """The tables of benchmarks/README.md from the results dicts."""
    lines = [f"Held-out: {len(results['photos'])} COCO val2017 photos, longer side {results['size']} px; "
             "mean ± standard error over the photos.", "",
             "| style | style size | model | style loss | content loss | vs. the paper's model |",
             "|---|---|---|---|---|---|"]
    for style, entry in results["styles"].items():
        models = entry["models"]
        for label, m in models.items():
            verdict = ""
            if label == "texture_nets" and "ulyanov2016" in models:
                p = models["ulyanov2016"]
                won = m["style"] < p["style"] and m["content"] <= p["content"]
                verdict = (f"{'beats' if won else 'does not beat'} it: style {m['style'] / p['style']:.2f}×, "
                           f"content {m['content'] / p['content']:.2f}×")
            lines.append(f"| {style} | {entry['style_size']} | {label} | {m['style']:.3f} ± {m['style_sem']:.3f} | "
                         f"{m['content']:.3f} ± {m['content_sem']:.3f} | {verdict} |")
    if gatys_results:
        lines += ["", "Ceiling: Gatys et al.'s optimisation (L-BFGS-B from the photo, pixels bounded to 0..1) "
                  "with the weights of the style's recipe, on the same photos:", "",
                  "| style | photo | model | style loss | content loss |", "|---|---|---|---|---|"]
        for style, g in gatys_results["styles"].items():
            for photo, row in g["per_photo"].items():
                for label, m in results["styles"].get(style, {}).get("models", {}).items():
                    if photo in m["per_photo"]:
                        r = m["per_photo"][photo]
                        lines.append(f"| {style} | {photo} | {label} | {r['style']:.3f} | {r['content']:.3f} |")
                lines.append(f"| {style} | {photo} | Gatys, {g['steps']} iterations, style_weight "
                             f"{g['style_weight']:g} ({row['seconds'] / 60:.0f} min) | "
                             f"{row['style']:.3f} | {row['content']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
