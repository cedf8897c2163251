"""Single-pass stylization of tensors, PIL images, files and folders with a trained checkpoint.

The network is always rebuilt from the checkpoint's own constructor arguments, never from flags.
Output files are written to a temporary name and renamed, so a failure never leaves a partial image.

Engines: PyTorch, or ONNX Runtime on the CPU (twice as fast there, see benchmarks/README.md); half
precision on CUDA. Pictures too large for memory are stylized tile by tile with whole-image
statistics (tiling.py): on request (`tile`), when the estimated memory exceeds `memory_limit`, or
when a one-pass attempt runs out of memory.
"""

from __future__ import annotations

import copy
import os
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from texture_nets.core import colors
from texture_nets.core.checkpoint import DEFAULT_CHECKPOINT_DIR, load_generator, resolve_model
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import (
    decodable_dimensions,
    image_to_tensor,
    load_image,
    resize_longer_side,
    resized_dimensions,
    save_image_atomic,
    tensor_to_image,
    to_rgb,
)
from texture_nets.core.layers import blend_weights, styles_blended
from texture_nets.core.memory import OutOfMemory, allocation_failures, check_fits, gigabytes
from texture_nets.core.pyramid import TextureNetwork
from texture_nets.inference import onnx_export
from texture_nets.inference.options import (
    ENGINES,
    PRECISIONS,
    EngineOptions,
    StylizeOptions,
    check_noise_factor,
    check_tile,
    parse_blend,
)
from texture_nets.inference.photoreal import photographic
from texture_nets.inference.tiling import activation_bytes_per_pixel, synthesize_tiled, tileable, tiled_bytes

DEFAULT_TILE = 1024  # pixels; a tile's activations take ~0.6 GB at the default width
SAMPLE_PHOTO = Path(__file__).resolve().parents[1] / "samples" / "chelsea.jpg"  # stylized when no photo is given




def prepare_generator(generator: torch.nn.Module, device: str | torch.device = "cpu", *, engine: str = "auto",
                      precision: str = "auto", onnx_cache: str | os.PathLike | None = None, onnx_spin: bool = True):
    """The generator ready to run: on `device`, in `precision` ('auto': fp16 on CUDA, fp32 on the
    CPU), and on the CPU run by ONNX Runtime where `engine` is 'onnx', or 'auto' and onnxruntime is
    installed (`onnx_spin`: its threads spin between operators, fastest for a process of its own).
    Returns the module or an `OnnxGenerator`."""
    if engine not in ENGINES:
        raise TextureNetsError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if precision != "auto" and precision not in PRECISIONS:
        raise TextureNetsError(f"precision must be auto or one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    dtype = PRECISIONS.get(precision, torch.float16 if device.type == "cuda" else torch.float32)
    generator.eval()
    if device.type == "cpu" and dtype == torch.float32 and onnx_export.exportable(generator) and (
            engine == "onnx" or (engine == "auto" and onnx_export.available())):
        if not onnx_export.available():
            raise TextureNetsError("--engine onnx needs onnxruntime and onnx: pip install onnxruntime onnx")
        try:
            return onnx_export.OnnxGenerator(generator, cache_dir=onnx_cache, spin=onnx_spin)
        except Exception as exc:  # noqa: BLE001 — export/session failures of a third-party runtime
            if engine == "onnx":
                raise TextureNetsError(f"ONNX Runtime could not run this generator ({exc})") from exc
            warnings.warn(f"ONNX Runtime failed ({exc.__class__.__name__}: {exc}); using PyTorch", stacklevel=2)
    if engine == "onnx":
        raise TextureNetsError("the ONNX engine runs a stylization generator in fp32 on the CPU")
    weight = next(generator.parameters())
    if weight.device != device or weight.dtype != dtype:  # a copy: the caller's module stays as it was
        generator = copy.deepcopy(generator).to(device=device, dtype=dtype)
    return generator


def untiled_bytes(generator: torch.nn.Module, height: int, width: int) -> int:
    """Rough peak memory of stylizing one height × width picture in one pass (see
    `tiling.activation_bytes_per_pixel`)."""
    padded_h, padded_w = generator.padded_size(height, width)
    return padded_h * padded_w * activation_bytes_per_pixel(generator)


def stylize_bytes(generator, height: int, width: int, tile: int | None = None) -> int:
    """Rough peak memory of `stylize_tensor` on one height × width picture at the least: in tiles
    of `tile` pixels if given, else one pass or tiles of DEFAULT_TILE, whichever needs less."""
    module = getattr(generator, "torch_generator", generator)
    if not tileable(module):
        return untiled_bytes(module, height, width)
    if tile is not None:
        return tiled_bytes(module, height, width, tile)
    return min(untiled_bytes(module, height, width), tiled_bytes(module, height, width, DEFAULT_TILE))


@torch.no_grad()
def stylize_tensor(generator, images: torch.Tensor, *, noise_factor: float | None = None, seed: int | None = 0,
                   tile: int | None = None, memory_limit: int | None = None,
                   noise: list[torch.Tensor] | None = None) -> torch.Tensor:
    """N,3,H,W photos in 0..1 → stylized N,3,H,W in 0..1, one forward pass (seed None: random noise;
    `noise`: the unit noise per scale, from the generator's `make_noise`, instead of the seed's).

    `generator` is a module or what `prepare_generator` returns. Tiled (pyramid only) when `tile`
    is given, when the estimated memory exceeds `memory_limit` bytes, or after running out of memory;
    the noise is the same either way, so the picture is too (up to float rounding).
    """
    check_noise_factor(noise_factor)
    check_tile(tile)
    module = getattr(generator, "torch_generator", generator)
    device = next(module.parameters()).device
    seeded = lambda: None if seed is None else torch.Generator(device=device).manual_seed(seed)  # noqa: E731
    height, width = images.shape[2:]
    can_tile = tileable(module)
    if tile is None and can_tile and memory_limit is not None and untiled_bytes(module, height, width) * len(images) > memory_limit:
        tile = DEFAULT_TILE
    if tile is None:
        try:
            with allocation_failures():
                return generator(images.to(device), noise_factor=noise_factor, generator=seeded(), noise=noise)
        except OutOfMemory:
            if not can_tile:
                raise
            warnings.warn(f"out of memory stylizing {width}x{height} in one pass: tiling ({DEFAULT_TILE}-pixel tiles)",
                          stacklevel=2)
            tile = DEFAULT_TILE
    if device.type == "cuda":  # after the except block: the failed pass's tensors are released by now
        torch.cuda.empty_cache()
    if not can_tile:
        raise TextureNetsError("tiled stylization works with the multi-scale (pyramid) generator only")
    return _stylize_tiled(module, images, noise_factor, seeded(), tile, noise)


def _stylize_tiled(module: TextureNetwork, images: torch.Tensor, noise_factor: float | None,
                   rng: torch.Generator | None, tile: int, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Tiled stylization, image by image, with the noise the one-pass call would have drawn (or `noise`)."""
    device, dtype = module.to_rgb.weight.device, module.to_rgb.weight.dtype
    batch, _, height, width = images.shape
    padded_h, padded_w = module.padded_size(height, width)
    if noise is None and module.config.noise_channels:
        noise = module.make_noise(batch, padded_h, padded_w, generator=rng, device=device)
    factor = module.config.noise_factor if noise_factor is None else noise_factor
    outputs = []
    for b in range(batch):
        padded = module.pad(images[b:b + 1].to(device), padded_h, padded_w).to(dtype)
        picture = synthesize_tiled(module, padded, noise and [n[b:b + 1] for n in noise], factor, tile)
        outputs.append(picture[:, :, :height, :width])
    return outputs[0] if batch == 1 else torch.cat(outputs)


def stylize(image: Image.Image | torch.Tensor | str | os.PathLike, checkpoint: TextureNetwork | str | os.PathLike,
            *, noise_factor: float | None = None, size: int | None = None, seed: int | None = 0,
            device: str | torch.device = "cpu", engine: str = "torch", precision: str = "fp32",
            tile: int | None = None, preserve_colors: str | None = None) -> Image.Image:
    """Stylize one photo (PIL image, 3,H,W tensor in 0..1, or a file) with a checkpoint path or a
    loaded generator; returns a PIL image the size of the (optionally resized) photo. `engine`,
    `precision`: see `prepare_generator`; `tile`: see `stylize_tensor`; `preserve_colors`: None or
    'luminance' (keep the photo's colours, see `keep_photo_colors`)."""
    options = StylizeOptions(size=size, noise_factor=noise_factor, seed=seed, preserve_colors=preserve_colors,
                             tile=tile)
    runner = Engine.load(checkpoint, options, device=device, engine=EngineOptions(engine, precision))
    if isinstance(image, torch.Tensor):
        photo = tensor_to_image(image)
    elif isinstance(image, Image.Image):
        photo = image
    else:
        photo = load_image(image)
    return runner.stylize_picture(photo)


def feed_forward_color_method(method: str | None) -> str | None:
    """The colour-preservation method a trained network can use: None or 'luminance'."""
    method = colors.check_method(method)
    if method == "match":
        raise TextureNetsError("preserve_colors 'match' recolours the style image, which a trained network has "
                               "built in: use 'luminance' (or optimisation-based stylization)")
    return method


def keep_photo_colors(stylized: torch.Tensor, photo: torch.Tensor, method: str | None) -> torch.Tensor:
    """`stylized` unchanged (method None), or with the photo's colours: its luminance recombined with
    the photo's chrominance ('luminance', see colors.py), on the photo's device and in float32."""
    if feed_forward_color_method(method) is None:
        return stylized
    return colors.combine_luminance(stylized.float().to(photo.device), photo)


def style_weights_of(module: torch.nn.Module, style: str) -> torch.Tensor | None:
    """The weight of each style of a network of several for `style` (see options.parse_blend), None
    for a network of one; a refusal in one line where the two do not fit."""
    return style_weights_for(module.style_names, style)


def style_weights_for(names: tuple[str, ...], style: str) -> torch.Tensor | None:
    """`style_weights_of` for a network whose styles are `names` (none: a network of one)."""
    blend = parse_blend(style)
    if not names:
        if blend:
            raise TextureNetsError(f"--style {style}: this network holds one style; --style picks among the styles "
                                   f"of a network of several")
        return None
    if not blend:
        raise TextureNetsError(f"this network holds {len(names)} styles ({', '.join(names)}): pick one with "
                               f"--style NAME, or blend them with --style NAME=WEIGHT,NAME=WEIGHT")
    try:
        return blend_weights(names, blend)
    except ValueError as exc:
        raise TextureNetsError(f"--style {style}: {exc}") from exc


@dataclass
class Engine:
    """One trained generator, prepared to run (PyTorch or ONNX Runtime, on its device, in its
    precision: `prepare_generator`), with the options it stylizes with. Photos, folders, pictures too
    large for memory (tiled), a clip's frames (video.py) and the web app's requests all go through
    `stylize`, so each comes out as the others would."""

    generator: object  # what prepare_generator returns: a torch module or an OnnxGenerator
    options: StylizeOptions = field(default_factory=StylizeOptions)
    memory_limit: int | None = None  # bytes one pass may take before the picture is tiled (None: no limit)

    def __post_init__(self) -> None:
        self.options.check()
        feed_forward_color_method(self.options.preserve_colors)
        self.style_weights = style_weights_of(self.module, self.options.style)

    @classmethod
    def load(cls, model: str | os.PathLike | torch.nn.Module, options: StylizeOptions | None = None, *,
             checkpoint_dir: str | os.PathLike = DEFAULT_CHECKPOINT_DIR, device: str | torch.device = "cpu",
             engine: EngineOptions | None = None, onnx_cache: str | os.PathLike | None = None,
             memory_limit: int | None = None) -> "Engine":
        """The engine of a checkpoint (a path, a style name looked up by `resolve_model`, or a loaded
        generator), prepared on `device` as `engine` says."""
        engine, options = engine or EngineOptions(), options or StylizeOptions()
        options.check()  # before the checkpoint is read
        generator = model if isinstance(model, torch.nn.Module) else load_generator(resolve_model(model, checkpoint_dir))
        prepared = prepare_generator(generator, device, engine=engine.engine, precision=engine.precision,
                                     onnx_cache=onnx_cache)
        return cls(prepared, options, memory_limit)

    @property
    def module(self) -> torch.nn.Module:
        """The PyTorch generator behind the engine (its config, noise and sizes)."""
        return getattr(self.generator, "torch_generator", self.generator)

    def stylize(self, photos: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """N,3,H,W photos in 0..1 → stylized N,3,H,W in 0..1 with the options' noise factor, seed,
        tiling and colour preservation (`noise`: the unit noise per scale instead of the seed's)."""
        options = self.options
        blended = nullcontext() if self.style_weights is None else styles_blended(self.style_weights)
        with blended:
            out = stylize_tensor(self.generator, photos, noise_factor=options.noise_factor, seed=options.seed,
                                 tile=options.tile, memory_limit=self.memory_limit, noise=noise)
        out = keep_photo_colors(out, photos, options.preserve_colors)
        if options.photorealistic:  # the photo (a clip's frame) is the guide: a stable clip stays stable
            out = photographic(photos.to(out.device), out, options.photoreal_radius, options.photoreal_eps)
        return out

    def stylize_picture(self, image: Image.Image) -> Image.Image:
        """A PIL photo resized to the options' size, stylized, as a PIL image."""
        photo = image_to_tensor(resize_longer_side(to_rgb(image), self.options.size)).unsqueeze(0)
        return tensor_to_image(self.stylize(photo))

    def bytes_for(self, height: int, width: int) -> int:
        """Rough peak memory of stylizing one height × width picture (see `stylize_bytes`)."""
        return stylize_bytes(self.generator, height, width, self.options.tile)

    def stylize_files(self, pairs: Sequence[tuple[Path, Path]], memory_available: int | None = None,
                      on_error=None) -> list[Path]:
        """Stylize each (input, output) pair; an unreadable input, or one too large for the
        `memory_available` bytes (see `check_picture_memory`), is reported to `on_error` (or raised)."""
        written = []
        for src, dst in pairs:
            try:  # any file's problem (unreadable, too large, unwritable) is that file's alone
                check_picture_memory(self.generator, src, self.options.size, self.options.tile, memory_available)
                photo = image_to_tensor(resize_longer_side(load_image(src), self.options.size)).unsqueeze(0)
                out = self.stylize(photo)
                del photo  # an 8K photo is 400 MB as floats
                written.append(save_image_atomic(tensor_to_image(out), dst))
            except TextureNetsError as exc:
                if on_error is None:
                    raise
                on_error(exc)
        return written


def check_picture_memory(generator, path: Path, size: int | None, tile: int | None, available: int | None,
                         warn=warnings.warn) -> None:
    """Before decoding it: refuse a picture that cannot be decoded in the host's memory, or stylized
    (resized to `size`, in `tile`s) in the `available` bytes even in tiles, saying which --size would
    fit; `warn` when it takes more than half of them."""
    original = decodable_dimensions(path)
    if available is None:
        return
    width, height = resized_dimensions(original, size)
    need = stylize_bytes(generator, height, width, tile)
    fitting = int(max(width, height) * (available / need) ** 0.5 * 0.9)
    fix = f"pass --size {fitting} or less" if fitting >= 16 else "free some memory"
    check_fits(need, available, f"{path}: stylizing {width}x{height} pixels", fix)
    if need > available / 2:
        warn(f"{path}: stylizing {width}x{height} pixels takes about {gigabytes(need)} of memory "
             f"({gigabytes(available)} available)", stacklevel=2)


def stylize_files(generator, pairs: Sequence[tuple[Path, Path]], *, size: int | None = None,
                  noise_factor: float | None = None, seed: int | None = 0, tile: int | None = None,
                  memory_limit: int | None = None, preserve_colors: str | None = None,
                  memory_available: int | None = None, on_error=None) -> list[Path]:
    """`Engine.stylize_files` for a prepared generator and the options as arguments."""
    options = StylizeOptions(size=size, noise_factor=noise_factor, seed=seed, preserve_colors=preserve_colors,
                             tile=tile)
    return Engine(generator, options, memory_limit).stylize_files(pairs, memory_available, on_error)
