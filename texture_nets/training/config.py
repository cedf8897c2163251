"""Training configuration: one dataclass, presets in configs/*.toml, command-line overrides.

Precedence: the dataclass defaults < a `--config` file (TOML, flat keys named like the fields)
< command-line flags. Unknown keys and flags are refused with a "did you mean". The library never
reads sys.argv or the environment: the CLI resolves everything into a `TrainConfig` first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from texture_nets.core.checkpoint import DEFAULT_CHECKPOINT_DIR, GENERATOR_ARGS, MAX_STYLES
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import MAX_STYLE_SIDE
from texture_nets.core.losses import LossConfig
from texture_nets.core.settings import (
    check_fields,
    check_keys,
    coerce,
    default_of,
    field_types,
    make_settings,
    setting,
    upgrade_legacy,
)


@dataclass
class TrainConfig(LossConfig):
    """Everything a training run needs; written into every checkpoint it produces."""

    # data
    data_dir: str = setting("", "folder of training photos, searched recursively (COCO's train2017 works as is)",
                            resumable=True, recipe=False, per_phase=False)
    annotations: str = setting("", "optional COCO instances JSON: train only on the images it lists",
                               resumable=True, recipe=False, per_phase=False)
    categories: list[str] = setting([], "with --annotations: only images showing these COCO categories (comma-separated)",
                                    resumable=False, recipe=False, per_phase=False)
    image_size: int = setting(256, "training crops are image_size × image_size pixels",
                              resumable=False, recipe=True, per_phase=True)
    photo_size: int = setting(0, "photos are resized so the shorter side is photo_size before cropping (0: image_size, "
                                 "a crop spans the shorter side); set it to the size you will stylize at, so the "
                                 "network learns the photos' detail at that scale",
                              resumable=False, recipe=True, per_phase=True)
    num_val: int = setting(4, "photos held out from data_dir as the validation batch",
                           resumable=False, recipe=False, per_phase=False)
    val_dir: str = setting("", "folder of validation photos (its first num_val, sorted); default: hold them out of data_dir",
                           resumable=False, recipe=False, per_phase=False)
    num_workers: int = setting(2, "DataLoader worker processes (0: load in the main process)",
                               resumable=True, recipe=False, per_phase=True)
    cache_dir: str = setting("", "keep decoded, resized photos here (.npy, ~200 KB each at 256 px): each photo is "
                                 "decoded and resized once instead of every epoch",
                             resumable=True, recipe=False, per_phase=False)
    # style
    texture: list[str] = setting([], "style (texture) image; repeat the flag to blend several", append=True,
                                 resumable=True, recipe=False, per_phase=False)
    teachers: list[str] = setting([], "distil one network of several styles from these trained networks "
                                      "(checkpoints or shipped style names; repeat the flag): each step one style "
                                      "in turn, the teacher's picture of the same crops and noise its target, no "
                                      "VGG (Dumoulin et al.'s conditional instance norm)", append=True,
                                  resumable=False, recipe=True, per_phase=False)
    new_style: str = setting("", "with --init_from a network of several styles and --texture: learn this new "
                                 "style by its scale and shift alone (the shared weights stay frozen), so a "
                                 "style takes minutes, not hours", resumable=False, recipe=True, per_phase=False)
    name: str = setting("", "style name, used for checkpoint file names (default: the first texture's file stem)",
                        resumable=True, recipe=False, per_phase=False)
    mode: str = setting("stylize", "'stylize' (photo + noise → picture) or 'texture' (noise → texture, no photos)",
                        choices=("stylize", "texture"), resumable=False, recipe=True, per_phase=False)
    # generator
    arch: str = setting("pyramid", "generator: 'pyramid' (Ulyanov's multi-scale texture network) or 'residual' "
                                   "(Johnson et al.'s, for comparison)", choices=("pyramid", "residual"),
                        resumable=False, recipe=True, per_phase=False)
    num_scales: int = setting(6, "scales of the multi-scale generator (the photo at 1, 1/2, … 1/2^(K-1))",
                              resumable=False, recipe=True, per_phase=False)
    channels: int = setting(8, "channels per scale of the generator (the paper's 8)",
                            resumable=False, recipe=True, per_phase=False)
    max_channels: int = setting(12, "pyramid: cap on the joins' width (0: the paper's 8, 16, … 8K; the cap is what "
                                    "makes full resolution cheap: 512² on 2 CPU cores in 0.8x the time of the "
                                    "fastest peer, against 3x with the paper's widths)",
                                resumable=False, recipe=True, per_phase=False)
    noise_channels: int = setting(3, "noise channels at every scale", resumable=False, recipe=True, per_phase=False)
    noise_factor: float = setting(0.1, "noise amplitude during training (and the default at inference)",
                                  resumable=False, recipe=True, per_phase=True)
    init_from: str = setting("", "start from this checkpoint's generator weights (fine-tune a style) instead of a fresh "
                                 "network, at step 0 with a fresh optimizer (its steps are kept as steps_before); its "
                                 "architecture must match these settings", resumable=True, recipe=False, per_phase=False)
    # optimisation
    batch_size: int = setting(4, "photos per step", resumable=False, recipe=True, per_phase=True)
    num_iterations: int = setting(2000, "training steps", resumable=True, recipe=True, per_phase=True)
    stop_at: int = setting(0, "end the run at this step, keeping num_iterations' learning-rate schedule (0: at "
                              "num_iterations): one phase of a longer schedule, as a phased recipe's [[phases]] use",
                           resumable=True, recipe=False, per_phase=True)
    learning_rate: float = setting(1e-2, "Adam learning rate (peak of the schedule)",
                                   resumable=False, recipe=True, per_phase=True)
    lr_schedule: str = setting("cosine", "'constant', 'cosine' (to 1% of learning_rate) or 'step'",
                               choices=("constant", "cosine", "step"), resumable=False, recipe=True, per_phase=True)
    lr_decay: float = setting(0.5, "with lr_schedule=step: multiply the rate by this every lr_decay_every steps",
                              resumable=False, recipe=True, per_phase=True)
    lr_decay_every: int = setting(1000, "with lr_schedule=step: steps between decays",
                                  resumable=False, recipe=True, per_phase=True)
    seed: int = setting(0, "seed of weights, data order, crops and noise",
                        resumable=False, recipe=True, per_phase=True)
    device: str = setting("auto", "'auto' (CUDA if available), 'cuda' or 'cpu'", choices=("auto", "cuda", "cpu"),
                          resumable=True, recipe=False, per_phase=False)
    precision: str = setting("auto", "'auto' (bf16 autocast on a CPU with native bf16 matrix units, bf16 or fp16 on "
                                     "CUDA, fp32 elsewhere), 'fp32', 'bf16' or 'fp16' (CUDA only); Gram matrices, "
                                     "loss reductions, weights and the optimizer stay fp32",
                             choices=("auto", "fp32", "bf16", "fp16"), resumable=True, recipe=True, per_phase=True)
    channels_last: bool = setting(True, "channels_last memory format for VGG (and the generator on CUDA) under "
                                        "mixed precision: faster convolutions",
                                  resumable=True, recipe=False, per_phase=True)
    compile: bool = setting(False, "torch.compile the generator and VGG (CUDA: faster steps after a slow first one)",
                            resumable=True, recipe=False, per_phase=True)
    # bookkeeping
    checkpoint_dir: str = setting(DEFAULT_CHECKPOINT_DIR, "where <name>.pt and the resumable <name>.resume.pt go",
                                  resumable=True, recipe=False, per_phase=False)
    checkpoint_every: int = setting(500, "save the resumable checkpoint every N steps (0: only at the end / Ctrl-C)",
                                    resumable=True, recipe=False, per_phase=True)
    val_every: int = setting(100, "evaluate the validation batch every N steps (0: never)",
                             resumable=True, recipe=False, per_phase=True)
    log_every: int = setting(10, "refresh the progress bar's losses every N steps",
                             resumable=True, recipe=False, per_phase=True)
    # dashboard
    viz: bool = setting(False, "live Visdom dashboard (needs a running server: python -m visdom.server)",
                        resumable=True, recipe=False, per_phase=True)
    viz_server: str = setting("http://localhost", "Visdom server address",
                              resumable=True, recipe=False, per_phase=True)
    viz_port: int = setting(8097, "Visdom server port", resumable=True, recipe=False, per_phase=True)
    viz_env: str = setting("", "Visdom environment (default: <name>_<run id>, kept when resuming)",
                           resumable=True, recipe=False, per_phase=True)
    viz_every: int = setting(10, "add a point to the loss plots every N steps (also kept in resume checkpoints)",
                             resumable=True, recipe=False, per_phase=True)
    viz_noise_factors: list[float] = setting([0.0, 0.5, 1.0], "noise factors of the dashboard's sample images, "
                                                              "besides the training one",
                                             resumable=True, recipe=False, per_phase=True)

    @property
    def resize_size(self) -> int:
        """The shorter side training and validation photos are resized to before cropping."""
        return max(self.photo_size, self.image_size)

    def validate(self) -> "TrainConfig":
        """Check values a user could get wrong; raise TextureNetsError with what to fix."""
        types = field_types(TrainConfig)  # values from a checkpoint or a caller, not only from flags
        for f in fields(self):  # converted in place: "a.jpg" for a list field is ["a.jpg"], not its letters
            setattr(self, f.name, coerce(f.name, getattr(self, f.name), types[f.name]))
        generator = {name: GENERATOR_ARGS["pyramid"][name][2] for name in
                     ("num_scales", "channels", "max_channels", "noise_channels", "noise_factor")}
        most = {"image_size": 8192, "photo_size": 16384, "batch_size": 4096, "num_iterations": 10**9,
                "style_size": MAX_STYLE_SIDE, "num_val": 4096, "num_workers": 256, **generator}  # larger: a typo, or hostile
        for name, limit in most.items():
            if getattr(self, name) > limit:
                raise TextureNetsError(f"{name} must be at most {limit}, got {getattr(self, name)}")
        if self.teachers:
            self.check_teachers()
        else:
            if self.new_style and (not self.init_from or self.arch != "pyramid" or self.mode != "stylize"):
                raise TextureNetsError("--new_style adds a style to a trained network of several: give it with "
                                       "--init_from (a pyramid network trained with --teachers) and --texture")
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

    def check_teachers(self) -> None:
        """A distillation's settings: two or more distinct teachers, photos to stylize, the pyramid."""
        check_fields(self)
        names = [Path(teacher).stem for teacher in self.teachers]
        if not 2 <= len(names) <= MAX_STYLES or len(set(names)) != len(names) or not all(names):
            raise TextureNetsError(f"--teachers must name 2 to {MAX_STYLES} different networks, got "
                                   f"{', '.join(self.teachers)}")
        if self.texture:
            raise TextureNetsError("--texture and --teachers exclude each other: a distilled network learns its "
                                   "styles from the teachers")
        if self.arch != "pyramid" or self.mode != "stylize":
            raise TextureNetsError("distillation trains the pyramid generator on photos (--arch pyramid, "
                                   "--mode stylize)")
        if not self.name:
            raise TextureNetsError("--teachers needs --name: the name the network of several styles is saved under")

    @property
    def style_names(self) -> tuple[str, ...]:
        """The styles the network learns: its teachers' names (none for a network of one style)."""
        return tuple(Path(teacher).stem for teacher in self.teachers)

    @property
    def style_name(self) -> str:
        """The name checkpoints are saved under."""
        return self.name or Path(self.texture[0]).stem

    def to_dict(self) -> dict:
        return asdict(self)














def checked_values(data: dict, where: str) -> dict:
    """Config values read from a file, each checked and converted to its field's type; unknown keys
    refused (with a "did you mean"), `where` naming the file in the message."""
    check_keys(data, TrainConfig, where=where)
    types = field_types(TrainConfig)
    return {key: coerce(key, value, types[key]) for key, value in data.items()}


POLICIES = ("resumable", "recipe", "per_phase")  # what every TrainConfig field says of itself (core/settings.py)


def fields_where(policy: str, value: bool = True) -> tuple[str, ...]:
    """The names of TrainConfig's fields whose `policy` (one of POLICIES) is `value`, in field order."""
    return tuple(f.name for f in fields(TrainConfig) if f.metadata[policy] is value)


RECIPE_KEYS = fields_where("recipe")  # what a recipe trains: a checkpoint was made by a recipe when these agree
RESUMABLE = frozenset(fields_where("resumable"))  # may change when resuming: where things are, how it is watched
PHASE_FIXED = frozenset(fields_where("per_phase", False))  # every phase of a phased recipe shares these


def trained_settings(train: dict) -> dict:
    """A checkpoint's training settings, complete: a setting newer than the checkpoint was, in effect,
    at its default there (`train` as a loaded checkpoint holds it: migrated, core/checkpoint.py)."""
    return {f.name: default_of(f) for f in fields(TrainConfig)} | train


def recipe_differences(recipe: dict, train: dict) -> list[str]:
    """The RECIPE_KEYS on which a recipe (load_config_file; a phased one's own, last-phase settings)
    and a checkpoint's training settings differ, as "key: recipe's ≠ checkpoint's"; a key the recipe
    leaves at its default is not compared."""
    trained = trained_settings(train)
    return [f"{key}: {recipe[key]!r} ≠ {trained[key]!r}" for key in RECIPE_KEYS
            if key in recipe and trained[key] != recipe[key]]


def make_config(file_values: dict | None = None, overrides: dict | None = None) -> TrainConfig:
    """Defaults < config-file values < overrides (the keys of older releases translated), validated."""
    return make_settings(TrainConfig, upgrade_legacy({**(file_values or {}), **(overrides or {})}))






