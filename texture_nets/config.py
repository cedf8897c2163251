"""Training configuration: one dataclass, presets in configs/*.toml, command-line overrides.

Precedence: the dataclass defaults < a `--config` file (TOML, flat keys named like the fields)
< command-line flags. Unknown keys and flags are refused with a "did you mean". The library never
reads sys.argv or the environment: the CLI resolves everything into a `TrainConfig` first.
"""

from __future__ import annotations

import difflib
import math
import sys
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from .data import MAX_STYLE_SCALE, MAX_STYLE_SIDE, MIN_STYLE_SCALE, MIN_STYLE_SIDE
from .errors import TextureNetsError
from .losses import check_weights
from .vgg import check_layers

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def _opt(default, help: str, **meta):
    """A dataclass field with its help text (the CLI is generated from these)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class LossConfig:
    """The perceptual loss: style image scale, blend, VGG layers and weights. One definition serves
    training (TrainConfig) and optimisation-based stylization (OptimizeConfig), so both measure the
    same thing and take the same flags."""

    style_blend: list[float] = _opt([], "blend weights of the style images (comma-separated; default: equal)")
    style_size: int = _opt(512, "style images are resized so the longer side is style_size (never enlarged)")
    style_scale: float = _opt(1.0, "then scaled by this factor (Gatys et al.'s style scale): above 1 the style's "
                                   "strokes, tiles or stars come out larger, below 1 finer")
    style_weight: float = _opt(1.0, "weight of the style loss (relative Gram error, see losses.py)")
    style_weights: list[float] = _opt([], "per-layer style weights, one per style layer (default: all 1)")
    content_weight: float = _opt(1.0, "weight of the content loss (relative feature error)")
    tv_weight: float = _opt(0.0, "weight of the total-variation smoothness loss")
    luminance_weight: float = _opt(0.0, "weight of the luminance-layout loss: 1 − correlation of the output's and "
                                        "the photo's luminance over 8×8-pixel blocks; keeps where the photo is light "
                                        "and dark, which the style's Gram statistics leave free (0: off)")
    style_layers: list[str] = _opt(DEFAULT_STYLE_LAYERS, "VGG-19 layers of the style loss (comma-separated)")
    content_layers: list[str] = _opt(["relu4_2"], "VGG-19 layers of the content loss (comma-separated)")
    pooling: str = _opt("max", "VGG pooling: 'max' or 'avg'", choices=("max", "avg"))
    vgg_weights: str = _opt("", "VGG-19 weights: a state_dict file, 'imagenet' (torchvision download) or "
                                "'random' (tests only); default: $TEXTURE_NETS_VGG_WEIGHTS, else 'imagenet'")

    def check_loss(self, num_styles: int, flag: str) -> None:
        """Check the loss settings for `num_styles` style images (given with `flag`); raise
        TextureNetsError with what to fix."""
        check_fields(self)
        if self.style_size < MIN_STYLE_SIDE:  # VGG-19 pools 4 times before relu5_1
            raise TextureNetsError(f"style_size must be at least {MIN_STYLE_SIDE} pixels, got {self.style_size}")
        if not MIN_STYLE_SCALE <= self.style_scale <= MAX_STYLE_SCALE:
            raise TextureNetsError(f"style_scale must be in [{MIN_STYLE_SCALE}, {MAX_STYLE_SCALE}], "
                                   f"got {self.style_scale}")
        if self.style_size * self.style_scale > MAX_STYLE_SIDE:  # the side VGG sees, whatever the image
            raise TextureNetsError(f"style_size × style_scale must be at most {MAX_STYLE_SIDE} pixels, got "
                                   f"{self.style_size} × {self.style_scale:g}")
        for name in ("style_weight", "content_weight", "tv_weight", "luminance_weight"):
            if getattr(self, name) < 0:
                raise TextureNetsError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if not num_styles:
            raise TextureNetsError(f"no style image: pass {flag} PATH")
        if self.style_blend:
            check_weights(self.style_blend, num_styles, "style_blend", f"{flag} images", "style image", some=True)
        check_layers(self.style_layers + self.content_layers)
        if self.style_weights:
            check_weights(self.style_weights, len(self.style_layers), "style_weights", "style_layers", "layer")


def check_fields(config) -> None:
    """Checks every config dataclass needs: values among a field's choices, numbers finite."""
    for f in fields(config):
        value = getattr(config, f.name)
        if f.metadata.get("choices") and value not in f.metadata["choices"]:
            raise TextureNetsError(f"{f.name} must be one of {', '.join(f.metadata['choices'])}, got {value!r}")
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise TextureNetsError(f"{f.name} must be a finite number, got {value!r}")


@dataclass
class TrainConfig(LossConfig):
    """Everything a training run needs; written into every checkpoint it produces."""

    # data
    data_dir: str = _opt("", "folder of training photos, searched recursively (COCO's train2017 works as is)")
    annotations: str = _opt("", "optional COCO instances JSON: train only on the images it lists")
    categories: list[str] = _opt([], "with --annotations: only images showing these COCO categories (comma-separated)")
    image_size: int = _opt(256, "training crops are image_size × image_size pixels")
    photo_size: int = _opt(0, "photos are resized so the shorter side is photo_size before cropping (0: image_size, "
                              "a crop spans the shorter side); set it to the size you will stylize at, so the "
                              "network learns the photos' detail at that scale")
    num_val: int = _opt(4, "photos held out from data_dir as the validation batch")
    val_dir: str = _opt("", "folder of validation photos (its first num_val, sorted); default: hold them out of data_dir")
    num_workers: int = _opt(2, "DataLoader worker processes (0: load in the main process)")
    cache_dir: str = _opt("", "keep decoded, resized photos here (.npy, ~200 KB each at 256 px): each photo is "
                              "decoded and resized once instead of every epoch")
    # style
    texture: list[str] = _opt([], "style (texture) image; repeat the flag to blend several", append=True)
    name: str = _opt("", "style name, used for checkpoint file names (default: the first texture's file stem)")
    mode: str = _opt("stylize", "'stylize' (photo + noise → picture) or 'texture' (noise → texture, no photos)",
                     choices=("stylize", "texture"))
    # generator
    arch: str = _opt("pyramid", "generator: 'pyramid' (Ulyanov's multi-scale texture network) or 'residual' "
                                "(Johnson et al.'s, for comparison)", choices=("pyramid", "residual"))
    num_scales: int = _opt(6, "scales of the multi-scale generator (the photo at 1, 1/2, … 1/2^(K-1))")
    channels: int = _opt(8, "channels per scale of the generator (the paper's 8)")
    max_channels: int = _opt(12, "pyramid: cap on the joins' width (0: the paper's 8, 16, … 8K; the cap is what "
                                 "makes full resolution cheap: 512² on 2 CPU cores in 0.8x the time of the "
                                 "fastest peer, against 3x with the paper's widths)")
    noise_channels: int = _opt(3, "noise channels at every scale")
    noise_factor: float = _opt(0.1, "noise amplitude during training (and the default at inference)")
    init_from: str = _opt("", "start from this checkpoint's generator weights (fine-tune a style) instead of a fresh "
                              "network, at step 0 with a fresh optimizer (its steps are kept as steps_before); its "
                              "architecture must match these settings")
    # optimisation
    batch_size: int = _opt(4, "photos per step")
    num_iterations: int = _opt(2000, "training steps")
    stop_at: int = _opt(0, "end the run at this step, keeping num_iterations' learning-rate schedule (0: at "
                           "num_iterations): one phase of a longer schedule, as a phased recipe's [[phases]] use")
    learning_rate: float = _opt(1e-2, "Adam learning rate (peak of the schedule)")
    lr_schedule: str = _opt("cosine", "'constant', 'cosine' (to 1% of learning_rate) or 'step'",
                            choices=("constant", "cosine", "step"))
    lr_decay: float = _opt(0.5, "with lr_schedule=step: multiply the rate by this every lr_decay_every steps")
    lr_decay_every: int = _opt(1000, "with lr_schedule=step: steps between decays")
    seed: int = _opt(0, "seed of weights, data order, crops and noise")
    device: str = _opt("auto", "'auto' (CUDA if available), 'cuda' or 'cpu'", choices=("auto", "cuda", "cpu"))
    precision: str = _opt("auto", "'auto' (bf16 autocast on a CPU with native bf16 matrix units, bf16 or fp16 on "
                                  "CUDA, fp32 elsewhere), 'fp32', 'bf16' or 'fp16' (CUDA only); Gram matrices, "
                                  "loss reductions, weights and the optimizer stay fp32",
                          choices=("auto", "fp32", "bf16", "fp16"))
    channels_last: bool = _opt(True, "channels_last memory format for VGG (and the generator on CUDA) under "
                                     "mixed precision: faster convolutions")
    compile: bool = _opt(False, "torch.compile the generator and VGG (CUDA: faster steps after a slow first one)")
    # bookkeeping
    checkpoint_dir: str = _opt("checkpoints", "where <name>.pt and the resumable <name>.resume.pt go")
    checkpoint_every: int = _opt(500, "save the resumable checkpoint every N steps (0: only at the end / Ctrl-C)")
    val_every: int = _opt(100, "evaluate the validation batch every N steps (0: never)")
    log_every: int = _opt(10, "refresh the progress bar's losses every N steps")
    # dashboard
    viz: bool = _opt(False, "live Visdom dashboard (needs a running server: python -m visdom.server)")
    viz_server: str = _opt("http://localhost", "Visdom server address")
    viz_port: int = _opt(8097, "Visdom server port")
    viz_env: str = _opt("", "Visdom environment (default: <name>_<run id>, kept when resuming)")
    viz_every: int = _opt(10, "add a point to the loss plots every N steps (also kept in resume checkpoints)")
    viz_noise_factors: list[float] = _opt([0.0, 0.5, 1.0], "noise factors of the dashboard's sample images, "
                                                           "besides the training one")

    @property
    def resize_size(self) -> int:
        """The shorter side training and validation photos are resized to before cropping."""
        return max(self.photo_size, self.image_size)

    def validate(self) -> "TrainConfig":
        """Check values a user could get wrong; raise TextureNetsError with what to fix."""
        types = field_types(TrainConfig)  # values from a checkpoint or a caller, not only from flags
        for f in fields(self):  # converted in place: "a.jpg" for a list field is ["a.jpg"], not its letters
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), types[f.name]))
        from .checkpoint import GENERATOR_ARGS  # the generator's own limits, as for a checkpoint
        generator = {name: GENERATOR_ARGS["pyramid"][name][2] for name in
                     ("num_scales", "channels", "max_channels", "noise_channels", "noise_factor")}
        most = {"image_size": 8192, "photo_size": 16384, "batch_size": 4096, "num_iterations": 10**9,
                "style_size": MAX_STYLE_SIDE, "num_val": 4096, "num_workers": 256, **generator}  # larger: a typo, or hostile
        for name, limit in most.items():
            if getattr(self, name) > limit:
                raise TextureNetsError(f"{name} must be at most {limit}, got {getattr(self, name)}")
        self.check_loss(len(self.texture), "--texture")
        if any(not path.strip() for path in self.texture):
            raise TextureNetsError("--texture is empty: give a style image's path")
        if any(c in self.style_name for c in "/\\\0") or self.style_name.strip(". ") == "":
            raise TextureNetsError(f"name {self.style_name!r} names the checkpoint files in checkpoint_dir: no '/', "
                                   f"'\\' or NUL, and not only dots")
        positive = ["image_size", "batch_size", "num_iterations", "num_scales", "channels",
                    "lr_decay_every", "log_every", "viz_every"]
        for name in positive:
            if getattr(self, name) < 1:
                raise TextureNetsError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not 0 < self.lr_decay <= 1:
            raise TextureNetsError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if not 0 <= self.seed < 2**63:
            raise TextureNetsError(f"seed must be in [0, 2**63), got {self.seed}")
        if self.image_size < 16:  # VGG-19 pools 4 times before relu5_1
            raise TextureNetsError(f"image_size must be at least 16 pixels, got {self.image_size}")
        if self.photo_size and self.photo_size < self.image_size:
            raise TextureNetsError(f"photo_size ({self.photo_size}) must be 0 or at least image_size ({self.image_size})")
        non_negative = ["photo_size", "max_channels", "num_val", "num_workers", "noise_factor", "noise_channels",
                        "checkpoint_every", "val_every", "stop_at"]
        for name in non_negative:
            if getattr(self, name) < 0:
                raise TextureNetsError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.stop_at > self.num_iterations:
            raise TextureNetsError(f"stop_at ({self.stop_at}) must be at most num_iterations ({self.num_iterations})")
        if not self.learning_rate > 0:
            raise TextureNetsError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.mode == "stylize" and not self.data_dir:
            raise TextureNetsError("no training photos: pass --data_dir FOLDER (or --mode texture)")
        if self.arch == "residual" and self.mode == "texture":
            raise TextureNetsError("the residual generator needs photos: use --arch pyramid for --mode texture")
        if self.mode == "texture" and self.noise_channels == 0:
            raise TextureNetsError("texture mode needs noise_channels ≥ 1")
        if not 0 < self.viz_port < 65536:
            raise TextureNetsError(f"viz_port must be in 1..65535, got {self.viz_port}")
        if any(f < 0 for f in self.viz_noise_factors):
            raise TextureNetsError(f"viz_noise_factors must be ≥ 0, got {self.viz_noise_factors}")
        if self.categories and not self.annotations:
            raise TextureNetsError("--categories needs --annotations (a COCO instances JSON)")
        return self

    @property
    def last_step(self) -> int:
        """The step the run ends at: stop_at, or the end of the schedule."""
        return self.stop_at or self.num_iterations

    @property
    def style_name(self) -> str:
        """The name checkpoints are saved under."""
        return self.name or Path(self.texture[0]).stem

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class OptimizeConfig(LossConfig):
    """Optimisation-based stylization (Gatys et al.): the loss settings shared with training, and how
    the pixels are optimised. Parsed by `stylize.py --optimize`."""

    style: list[str] = _opt([], "style image; repeat the flag to blend several (with --style_blend)", append=True)
    steps: int = _opt(300, "optimiser iterations (L-BFGS: iterations, not loss evaluations)")
    optimizer: str = _opt("lbfgs", "'lbfgs' (L-BFGS-B with pixels bounded to 0..1, Gatys et al.'s choice) or "
                                   "'adam' (Adam on the pixels, clamped to 0..1 after each step)",
                          choices=("lbfgs", "adam"))
    learning_rate: float = _opt(0.02, "with --optimizer adam: the step size on pixels in 0..1")
    init: str = _opt("content", "start from the photo ('content') or from uniform noise ('noise')",
                     choices=("content", "noise"))
    save_every: int = _opt(0, "also write the image every N steps, as <output>_<step>.<ext> (0: only the result)")

    def validate(self) -> "OptimizeConfig":
        """Check values a user could get wrong; raise TextureNetsError with what to fix."""
        self.check_loss(len(self.style), "--style")
        if self.steps < 1:
            raise TextureNetsError(f"steps must be ≥ 1, got {self.steps}")
        if self.steps > 10**6:
            raise TextureNetsError(f"steps must be at most 1000000, got {self.steps}")
        if self.style_size > MAX_STYLE_SIDE:
            raise TextureNetsError(f"style_size must be at most {MAX_STYLE_SIDE}, got {self.style_size}")
        if not self.learning_rate > 0:
            raise TextureNetsError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.save_every < 0:
            raise TextureNetsError(f"save_every must be ≥ 0, got {self.save_every}")
        return self


def field_types(cls) -> dict[str, type]:
    """The resolved type of every field of a config dataclass."""
    return typing.get_type_hints(cls)


def _coerce(name: str, value, kind):
    """Check/convert one config value from a file to the field's type, or raise a clear error."""
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise TextureNetsError(f"config key {name}: expected a list, got {value!r}")
        return [_coerce(name, v, item) for v in value]
    if kind is bool:
        if not isinstance(value, bool):
            raise TextureNetsError(f"config key {name}: expected true/false, got {value!r}")
        return value
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, str):
        return value.strip()
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TextureNetsError(f"config key {name}: expected {kind.__name__}, got {value!r}")


def upgrade_legacy(values: dict) -> dict:
    """`values` with the keys of older releases translated: `amp` (a bool, CUDA-only mixed
    precision) became `precision` ('auto' / 'fp32'), so old configs and checkpoints still load."""
    if "amp" not in values:
        return values
    values = dict(values)
    amp = values.pop("amp")
    if not isinstance(amp, bool):
        raise TextureNetsError(f"config key amp: expected true/false, got {amp!r} (it is now precision = "
                               f"'auto' | 'fp32' | 'bf16' | 'fp16')")
    values.setdefault("precision", "auto" if amp else "fp32")
    return values


def check_keys(keys, cls=TrainConfig, where: str = "config") -> None:
    """Refuse keys that are not fields of `cls`, suggesting the closest one."""
    names = [f.name for f in fields(cls)]
    for key in keys:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise TextureNetsError(f"unknown {where} option {key!r}{hint}")


def resolve_preset(name_or_path: str) -> Path:
    """A config file path, or the name of a preset in configs/ (with or without .toml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    folders = (Path.cwd() / "configs", Path(__file__).resolve().parent.parent / "configs")
    for folder in folders:
        for candidate in (folder / name_or_path, folder / f"{name_or_path}.toml"):
            if candidate.is_file():
                return candidate
    presets = sorted({p.stem for folder in folders if folder.is_dir() for p in folder.glob("*.toml")})
    raise TextureNetsError(f"config not found: {name_or_path} (a .toml file, or a preset: {', '.join(presets)})")


def load_config_file(name_or_path: str) -> dict:
    """Read a TOML config (flat keys named like TrainConfig's fields) into checked values; a recipe
    trained in phases also holds "phases": its earlier phases' setting tables (phases.py)."""
    path = resolve_preset(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TextureNetsError(f"{path}: not valid TOML ({exc})") from exc
    data = upgrade_legacy(data)
    phases = data.pop("phases", None)
    values = checked_values(data, where=path.name)
    if phases is not None:  # a recipe trained in phases (phases.py)
        from .phases import read_phases
        values["phases"] = read_phases(phases, path.name)
    return values


def checked_values(data: dict, where: str) -> dict:
    """Config values read from a file, each checked and converted to its field's type; unknown keys
    refused (with a "did you mean"), `where` naming the file in the message."""
    check_keys(data, where=where)
    types = field_types(TrainConfig)
    return {key: _coerce(key, value, types[key]) for key, value in data.items()}


# The settings that define what a recipe trains: a checkpoint was made by a recipe when these agree.
RECIPE_KEYS = ("mode", "image_size", "photo_size", "batch_size", "num_iterations", "learning_rate", "lr_schedule",
               "lr_decay", "lr_decay_every", "style_size", "style_scale", "style_weight", "style_weights",
               "style_blend", "content_weight", "tv_weight", "luminance_weight", "pooling", "noise_factor",
               "noise_channels", "seed", "arch", "num_scales", "channels", "max_channels", "style_layers",
               "content_layers", "precision")


def trained_settings(train: dict) -> dict:
    """A checkpoint's training settings, complete: a setting newer than the checkpoint was, in effect,
    at its default there (and the keys of older releases translated, upgrade_legacy)."""
    return {f.name: default_of(f) for f in fields(TrainConfig)} | upgrade_legacy(train)


def recipe_differences(recipe: dict, train: dict) -> list[str]:
    """The RECIPE_KEYS on which a recipe (load_config_file; a phased one's own, last-phase settings)
    and a checkpoint's training settings differ, as "key: recipe's ≠ checkpoint's"; a key the recipe
    leaves at its default is not compared."""
    trained = trained_settings(train)
    return [f"{key}: {recipe[key]!r} ≠ {trained[key]!r}" for key in RECIPE_KEYS
            if key in recipe and trained[key] != recipe[key]]


def make_config(file_values: dict | None = None, overrides: dict | None = None, cls=TrainConfig):
    """Defaults < config-file values < overrides, validated, as a `cls` (TrainConfig or OptimizeConfig)."""
    values = upgrade_legacy({**(file_values or {}), **(overrides or {})})
    check_keys(values, cls)
    return cls(**values).validate()


def default_of(f) -> object:
    """The default value of a dataclass field."""
    return f.default_factory() if f.default is MISSING else f.default


def config_to_toml(config: TrainConfig) -> str:
    """The resolved config as TOML (written next to a run's outputs; printed by --dry_run)."""
    lines = []
    for key, value in asdict(config).items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
