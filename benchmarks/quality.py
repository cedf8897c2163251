#!/usr/bin/env python
"""Quality of the shipped styles, measured with the loss they were trained with and with the classic
unnormalised perceptual loss, plus how recognisable the photo stays and how close the colours come to
the style image, side by side with peers: the Texture Networks paper's own released generators,
mmalotin's MobileNetV2 fast-neural-style networks and (optionally) Gatys et al.'s optimisation.

    python benchmarks/quality.py                                  # every checkpoint + its peers
    python benchmarks/quality.py --photos 2 --styles mosaic,candy --output /tmp/q.json   # a short trial
    python benchmarks/quality.py --gatys ulyanov_mosaic,ulyanov_starry --gatys_photos 1   # the ceiling
    python benchmarks/quality.py --multi multistyle.pt   # also each style of a network of several

Held-out photos: the first --photos images of COCO val2017 (sorted by file name), resized so the
longer side is --size (512). Every picture is scored alone against its photo and the style image,
with the original Caffe VGG-19 (../shared/vgg19, through texture_nets.vgg.VGG19Features: RGB 0..1
in, normalised inside), in one VGG pass over the picture and one over the photo:
- relative (the training loss at unit weights, texture_nets/losses.py): style = Σ over relu1_1…relu5_1
  of the relative Gram error, content = relative relu4_2 error;
- classic (Gatys et al., Johnson et al., unnormalised): style = Σ over relu1_1…relu5_1 of
  mean((G − G_style)²) with G = FᵀF/(C·H·W), content = mean((F − F_photo)²) at relu4_2, in raw
  Caffe VGG units;
- edge correlation (Sobel magnitude of the luminance after a σ = 2 px blur, photo vs picture),
  luminance correlation (σ = 6 px), colour distance to the style image (mean |Δ| of the Lab channel
  means and stds) and contrast ratio (the picture's luma std over the style image's); see
  benchmarks/quality_metrics.py. The unstylized photo gets a row of its own for the colour figures.
The style image enters at the style_size its checkpoint was trained with (never enlarged); a peer is
scored against the same target as our checkpoint of that style. Figures are means over the photos,
seed 0 for all noise. --precision bf16 runs the two VGG passes under bf16 autocast (the style Gram
targets stay fp32, as in training); the reported numbers are fp32.

Peers run as their authors ran them. ../shared/peers/ulyanov2016_t7 (benchmarks/ulyanov_t7.py): noise
factor 1, BatchNorm with per-image statistics. ../shared/peers/mmalotin_mobilenetv2
(benchmarks/mmalotin_mobilenetv2.py): mosaic and candy, RGB 0..255 in and out. Gatys: L-BFGS-B from
the photo, --gatys_steps iterations, on the first --gatys_photos photos, minimising
content_weight·content + style_weight·style with the weights of that style's recipe (configs/styles/);
a run with --gatys does only that and writes its own JSON, which later runs read to compare all three
on those photos (it is slow: about 20 minutes per 512-px photo on 2 CPU cores).

"ms 512²": one 512×512 stylization on this CPU with the threads the run has (median of 3 after a
warm-up; ours through ONNX Runtime, texture_nets.stylize.prepare_generator(engine='onnx'); peers in
PyTorch); --no-timing skips it.

Results: benchmarks/results/quality_cpu.json (and quality_gatys_cpu.json) and the markdown printed
(benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import quality_metrics as qm  # noqa: E402

from texture_nets.core.checkpoint import SHIPPED_DIR, generator_from_checkpoint, load_checkpoint, total_steps  # noqa: E402
from texture_nets.core.files import atomic_output  # noqa: E402
from texture_nets.core.images import (  # noqa: E402
    find_images,
    image_to_tensor,
    load_image,
    load_style_image,
    resize_longer_side,  # noqa: E402
    tensor_to_image,
)
from texture_nets.core.losses import relative_mse  # noqa: E402
from texture_nets.inference.engine import Engine, prepare_generator, stylize_tensor  # noqa: E402
from texture_nets.inference.optimize import optimize_image  # noqa: E402
from texture_nets.inference.options import StylizeOptions  # noqa: E402
from texture_nets.training.config import TrainConfig  # noqa: E402
from texture_nets.training.recipes import load_config_file  # noqa: E402
from texture_nets.training.run import build_criterion  # noqa: E402

SHARED = ROOT.parent / "shared"
VGG = SHARED / "vgg19" / "vgg19_caffe_features_fp16.pth"
STYLES = SHARED / "data" / "styles"
VAL = SHARED / "data" / "coco" / "val2017"
RESULTS = ROOT / "benchmarks" / "results"
PEERS = SHARED / "peers" / "ulyanov2016_t7" / "stylization_models"
PEER_FILES = {"ulyanov_mosaic": "mosaic_style.t7", "pleades": "pleades_style.t7",
              "ulyanov_starry": "starry_style.t7", "turner": "turner_style.t7"}
MMALOTIN = SHARED / "peers" / "mmalotin_mobilenetv2"
MMALOTIN_FILES = {"mosaic": "mosaic.pth", "candy": "candy.pth"}  # their picasso has no shipped style of ours
SHIPPED = ["mosaic", "candy", "starry_night", "the_scream", "udnie", "wave",
           "ulyanov_mosaic", "pleades", "ulyanov_starry", "turner"]
OURS = "texture_nets"
MULTI = "texture_nets, one network of several styles"  # with --multi
PEER_ORDER = ("ulyanov2016", "mmalotin_mobilenetv2")  # as peers() finds them: rows of the tables in this order
PHOTO = "photo"  # the unstylized photo: a reference row for the colour figures


def held_out_photos(count: int, size: int, skip: frozenset[Path] = frozenset()) -> list[tuple[str, torch.Tensor]]:
    """The first `count` val2017 photos (sorted) not in `skip` (a style image that is one of them),
    longer side `size`, as (name, 1,3,H,W in 0..1)."""
    files = [f for f in find_images(VAL) if f.resolve() not in skip][:count]
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


class Scorer:
    """Every figure of one picture against its photo and one style: the relative (training) and the
    classic losses from one VGG pass over each, and the quality_metrics figures.

    The relative numbers are those of `score(scoring_loss(style, style_size), ...)` (the training
    loss, unit weights), computed from the same features as the classic ones. The style image is
    taken at style_size and never enlarged, whatever style_scale a model trained with: every model,
    ours and the peers, is measured against the style image as it is."""

    def __init__(self, style: str, style_size: int, precision: str = "fp32"):
        if precision not in ("fp32", "bf16"):
            raise SystemExit(f"--precision must be fp32 or bf16, not {precision!r}")
        self.criterion = scoring_loss(style, style_size)  # VGG-19 and the style's fp32 Gram targets
        if any(w != 1.0 for w in self.criterion.layer_weights.values()):
            raise SystemExit("scoring assumes unit style layer weights")
        self.vgg, self.precision = self.criterion.vgg, precision
        self.targets = self.criterion.style_targets(0)
        self.content_layers = list(self.criterion.content_layers)
        self.layers = list(dict.fromkeys(self.criterion.style_layers + self.content_layers))
        image, _ = load_style_image(style_file(style), style_size)
        self.style_stats = qm.colour_stats(image)

    def features(self, images: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return self.vgg(images, layers)

    @torch.no_grad()
    def __call__(self, picture: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
        feats = self.features(picture, self.layers)
        targets = self.features(photo, self.content_layers)
        classic_style, style = qm.gram_errors(feats, self.targets)
        content = sum(relative_mse(feats[layer], targets[layer])
                      for layer in self.content_layers) / len(self.content_layers)
        classic_content = sum(qm.classic_content_loss(feats[layer], targets[layer])
                              for layer in self.content_layers) / len(self.content_layers)
        return {"style": float(style[0]), "content": float(content),
                "classic_style": float(classic_style[0]), "classic_content": float(classic_content[0]),
                **qm.picture_metrics(photo, picture, self.style_stats)}

    def photo_row(self, photo: torch.Tensor) -> dict[str, float]:
        """The colour figures of the unstylized photo (no VGG pass)."""
        return qm.picture_metrics(photo, photo, self.style_stats)


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean (and standard error) of each figure over the photos."""
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        out[key] = statistics.fmean(values)
        out[f"{key}_sem"] = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return out


def recipe(style: str) -> dict:
    """The training settings of a shipped style (configs/styles/<style>.toml)."""
    return load_config_file(str(ROOT / "configs" / "styles" / f"{style}.toml"))


def ours(style: str, checkpoint_dir: Path):
    """Our checkpoint of `style`: (stylize function, its training config, its generator, the training
    steps behind it, counting earlier phases') or None."""
    path = checkpoint_dir / f"{style}.pt"
    if not path.is_file():
        return None
    checkpoint = load_checkpoint(path)
    generator = generator_from_checkpoint(checkpoint, str(path))
    return (lambda photo: stylize_tensor(generator, photo, seed=0)), checkpoint["train"], generator, total_steps(checkpoint)


def multi_network(path: str | None):
    """The network of several styles at `path` (--multi) and the training steps behind it, read once
    for every style; None without --multi."""
    if not path:
        return None
    checkpoint = load_checkpoint(Path(path))
    return generator_from_checkpoint(checkpoint, str(path)), total_steps(checkpoint)


def peers(style: str) -> dict:
    """The peers of `style` that are present: {label: stylize function}."""
    found = {}
    if style in PEER_FILES and (PEERS / PEER_FILES[style]).is_file():
        from ulyanov_t7 import UlyanovT7
        network = UlyanovT7(PEERS / PEER_FILES[style])
        found["ulyanov2016"] = lambda photo: network(photo, seed=0)
    if style in MMALOTIN_FILES and (MMALOTIN / MMALOTIN_FILES[style]).is_file():
        import mmalotin_mobilenetv2
        mobile = mmalotin_mobilenetv2.load(MMALOTIN / MMALOTIN_FILES[style])
        found["mmalotin_mobilenetv2"] = mobile.photo
    return found


def reusable_peers(before: dict | None, entry: dict, file_precision: str) -> dict:
    """The peers' results of an earlier run of this style that still hold: same style size and scoring
    precision (the photos were checked already). A peer's network and its targets do not change between
    runs, so re-running it would spend minutes to get the same figures."""
    if not before or before.get("style_size") != entry["style_size"]:
        return {}
    if before.get("scored_precision", file_precision) != entry.get("scored_precision", file_precision):
        return {}
    return {label: m for label, m in before.get("models", {}).items() if label != OURS}


def in_model_order(models: dict) -> dict:
    """`models` ({label: figures}) in one fixed order, ours first, then the peers as peers() finds them,
    then any other label as given: the tables and the JSON must not depend on which peers an --update
    kept and which it re-ran."""
    order = [OURS, MULTI, *PEER_ORDER]
    return dict(sorted(models.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)))


def evaluate(stylize, scorer: Scorer, photos, keep: Path | None = None) -> tuple[list[dict[str, float]], float, float]:
    """Per-photo figures of one model, and the seconds spent stylizing and scoring; the first
    picture is saved to `keep` to look at."""
    rows, stylizing, scoring = [], 0.0, 0.0
    for i, (_, photo) in enumerate(photos):
        started = time.perf_counter()
        picture = stylize(photo).float()
        stylizing += time.perf_counter() - started
        if i == 0 and keep is not None:
            tensor_to_image(picture[0]).save(keep)
        started = time.perf_counter()
        rows.append(scorer(picture, photo))
        scoring += time.perf_counter() - started
    return rows, stylizing, scoring


def time_512(stylize, photo: torch.Tensor, repeats: int = 3) -> float:
    """Median milliseconds of one 512×512 stylization (after a warm-up call)."""
    square = torch.nn.functional.interpolate(photo, size=(512, 512), mode="bilinear", align_corners=False).clamp(0, 1)
    stylize(square)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        stylize(square)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def timed_ours(generator, style: str = "") -> tuple[object, str]:
    """Our generator as the CLI runs it on the CPU (`style`: one of a network of several): ONNX
    Runtime where it can, else PyTorch."""
    try:
        prepared, engine = prepare_generator(generator, "cpu", engine="onnx"), "onnxruntime"
    except Exception as exc:  # noqa: BLE001 — no onnxruntime, or a failed export: time PyTorch instead
        print(f"ONNX Runtime unavailable ({exc}); timing PyTorch", flush=True)
        prepared, engine = generator, "torch"
    if style:
        return Engine(prepared, StylizeOptions(seed=0, style=style)).stylize, engine
    return (lambda photo: stylize_tensor(prepared, photo, seed=0)), engine


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
    parser.add_argument("--checkpoint_dir", default=str(SHIPPED_DIR), help="the models scored (default: the shipped styles)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="of the scoring VGG passes (bf16: autocast; the reported figures are fp32)")
    parser.add_argument("--timing", action=argparse.BooleanOptionalAction, default=True,
                        help="time one 512×512 stylization per model (ms 512² column)")
    parser.add_argument("--gatys", default="", help="only optimise these styles with Gatys et al.'s method")
    parser.add_argument("--gatys_photos", type=int, default=1)
    parser.add_argument("--gatys_steps", type=int, default=300)
    parser.add_argument("--multi", help="also score this network of several styles, each style it holds (--style)")
    parser.add_argument("--pictures", default="", help="folder for each model's first picture (to look at)")
    parser.add_argument("--update", action="store_true",
                        help="add (or redo) --styles in the existing --output instead of replacing it (same photos); "
                             "peers scored there at the same style size and precision are kept, not re-run")
    parser.add_argument("--rescore_peers", action="store_true", help="with --update: run the peers again too")
    parser.add_argument("--readme", help="also put the tables in this markdown file (benchmarks/README.md), in place "
                                         "of the ones there (from 'Held-out: ' up to 'How to read it:')")
    parser.add_argument("--output", "--out", dest="out", default=str(RESULTS / "quality_cpu.json"),
                        help="the results JSON")
    parser.add_argument("--gatys_out", default=str(RESULTS / "quality_gatys_cpu.json"))
    args = parser.parse_args()
    photos = held_out_photos(args.photos, args.size)
    pictures = Path(args.pictures) if args.pictures else None
    if pictures:
        pictures.mkdir(parents=True, exist_ok=True)
    if args.gatys:
        run_gatys(args, photos[:args.gatys_photos], pictures)
        return
    results = {"machine": machine(), "photos": [name for name, _ in photos], "size": args.size,
               "precision": args.precision, "styles": {}}
    if args.update and Path(args.out).is_file():
        previous = json.loads(Path(args.out).read_text())
        if (previous["photos"], previous["size"]) != (results["photos"], results["size"]):
            raise SystemExit(f"--update: {args.out} was measured on other photos; run without --update")
        results["precision"] = previous.get("precision", "fp32")  # the file's; a style scored otherwise says so
        results["styles"] = previous["styles"]
    multi = multi_network(args.multi)
    for style in [s for s in args.styles.split(",") if s]:
        mine = ours(style, Path(args.checkpoint_dir))
        style_size = mine[1]["style_size"] if mine else recipe(style)["style_size"]
        scorer = Scorer(style, style_size, args.precision)
        photo_rows = [scorer.photo_row(photo) for _, photo in photos]
        entry = {"style_size": style_size, "photo": {**summarise(photo_rows), "per_photo": dict(zip(results["photos"], photo_rows))},
                 "models": {}}
        if args.precision != results["precision"]:
            entry["scored_precision"] = args.precision
        kept = {} if args.rescore_peers else reusable_peers(results["styles"].get(style), entry, results["precision"])
        models = {OURS: mine[0]} if mine else {}
        if multi and style in multi[0].style_names:  # stylize.py --model MULTI --style STYLE
            models[MULTI] = Engine(multi[0], StylizeOptions(seed=0, style=style)).stylize
        models.update({label: run for label, run in peers(style).items() if label not in kept})
        entry["models"].update(kept)
        for label in kept:
            print(f"{style:15s} {label:21s} kept from {args.out} (--rescore_peers runs it again)", flush=True)
        for label, stylize in models.items():
            rows, stylizing, scoring = evaluate(stylize, scorer, photos,
                                                pictures / f"{style}_{label}.png" if pictures else None)
            m = {**summarise(rows), "stylize_seconds": stylizing, "score_seconds": scoring,
                 "per_photo": dict(zip(results["photos"], rows))}
            if label in (OURS, MULTI):
                m["step"] = mine[3] if label == OURS else multi[1]
            if args.timing:
                timed, m["engine"] = (timed_ours(mine[2]) if label == OURS else
                                      timed_ours(multi[0], style) if label == MULTI else (stylize, "torch"))
                m["ms_512"] = time_512(timed, photos[0][1])
            entry["models"][label] = m
            print(f"{style:15s} {label:21s} style {m['style']:.4f} content {m['content']:.4f} "
                  f"classic {m['classic_style']:.4g} / {m['classic_content']:.4g} edge {m['edge_corr']:.3f} "
                  f"lum {m['lum_corr']:.3f} colour {m['colour_distance']:.2f} contrast {m['contrast_ratio']:.2f} "
                  f"(stylize {stylizing:.0f} s, score {scoring:.0f} s)", flush=True)
        entry["models"] = in_model_order(entry["models"])
        results["styles"][style] = entry
    shipped_first = {style: results["styles"][style] for style in SHIPPED if style in results["styles"]}
    results["styles"] = {**shipped_first, **results["styles"]}
    write_json(results, args.out)
    gatys_path = Path(args.gatys_out)
    tables = markdown(results, json.loads(gatys_path.read_text()) if gatys_path.is_file() else None)
    print(tables)
    if args.readme:
        path = Path(args.readme)
        path.write_text(replace_tables(path.read_text(encoding="utf-8"), tables), encoding="utf-8")
        print(f"tables replaced in {path}")


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
    """The results file, replaced whole or not at all (an interrupted run keeps the previous one)."""
    with atomic_output(Path(path)) as tmp:
        tmp.write_text(json.dumps(results, indent=1), encoding="utf-8")


def _mean_sem(m: dict, key: str, digits: int = 3) -> str:
    if key not in m or m[key] is None or (isinstance(m[key], float) and math.isnan(m[key])):
        return "—"
    return f"{m[key]:.{digits}f} ± {m.get(f'{key}_sem', 0.0):.{digits}f}"


def _value(m: dict, key: str, spec: str) -> str:
    value = m.get(key)
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def verdict(o: dict, m: dict) -> str:
    """Ours ÷ a peer on the relative losses, and whether ours is lower on both losses under both
    metrics (relative and classic; a model measured before the classic metric existed: relative only)."""
    pairs = [("style", "content")] + ([("classic_style", "classic_content")]
                                      if "classic_style" in o and "classic_style" in m else [])
    won = all(o[a] < m[a] and o[b] < m[b] for a, b in pairs)
    metrics = "both metrics" if len(pairs) == 2 else "relative"
    return (f"{o['style'] / m['style']:.2f}×, {o['content'] / m['content']:.2f}×"
            f"{f' (ours lower on both, {metrics})' if won else ''}")


def replace_tables(readme: str, tables: str) -> str:
    """`readme` with its quality tables (from the paragraph starting 'Held-out: ' up to 'How to read
    it:') replaced by `tables`; a SystemExit, before anything is written, where they are not found."""
    start = readme.find("\nHeld-out: ")
    end = readme.find("\nHow to read it:", start)
    if start < 0 or end < 0:
        raise SystemExit("--readme: no 'Held-out: ' … 'How to read it:' block to replace")
    return f"{readme[:start + 1]}{tables.rstrip()}\n{readme[end:]}"


def markdown(results: dict, gatys_results: dict | None = None) -> str:
    """The tables of benchmarks/README.md from the results dicts."""
    lines = [f"Held-out: {len(results['photos'])} COCO val2017 photos, longer side {results['size']} px; "
             f"mean ± standard error over the photos (scored in {results.get('precision', 'fp32')}). "
             "Losses: lower is better; relative = the training loss at unit weights, classic = unnormalised "
             "(raw Caffe VGG units). Edge / lum. corr: higher keeps more of the photo. Colour distance to "
             "the style image (Lab units): lower is closer. Contrast: luma std ÷ the style image's.", "",
             "| style | style size | model | style (rel.) | content (rel.) | style (classic) | content (classic) "
             "| edge corr | lum. corr | colour dist. | contrast | ms 512² | ours ÷ this (rel. style, content) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for style, entry in results["styles"].items():
        models = entry["models"]
        for label, m in models.items():
            against = verdict(models[OURS], m) if label != OURS and OURS in models else ""
            name = f"{label} (step {m['step']:,})" if m.get("step") else label
            if entry.get("scored_precision"):
                name += f", scored in {entry['scored_precision']}"
            timing = f"{m['ms_512']:.0f}" + (" (ONNX)" if m.get("engine") == "onnxruntime" else "") if "ms_512" in m else "—"
            lines.append(f"| {style} | {entry['style_size']} | {name} | {_mean_sem(m, 'style')} | "
                         f"{_mean_sem(m, 'content')} | {_value(m, 'classic_style', '.3g')} | "
                         f"{_value(m, 'classic_content', '.3g')} | {_value(m, 'edge_corr', '.3f')} | "
                         f"{_value(m, 'lum_corr', '.3f')} | {_value(m, 'colour_distance', '.1f')} | "
                         f"{_value(m, 'contrast_ratio', '.2f')} | {timing} | {against} |")
        if "photo" in entry:
            p = entry["photo"]
            lines.append(f"| {style} | {entry['style_size']} | (the photo) | | | | | | | "
                         f"{_value(p, 'colour_distance', '.1f')} | {_value(p, 'contrast_ratio', '.2f')} | | |")
    if gatys_results:
        lines += ["", "Ceiling: Gatys et al.'s optimisation (L-BFGS-B from the photo, pixels bounded to 0..1) "
                  "with the weights of the style's recipe, on the same photos (relative losses):", "",
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
