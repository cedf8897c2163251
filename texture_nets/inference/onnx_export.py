"""Run a generator with ONNX Runtime: the fastest CPU path measured here (benchmarks/README.md).

PyTorch's CPU convolutions are slow for the pyramid's thin layers (8–16 channels); ONNX Runtime's
blocked-layout kernels run the same graph about twice as fast on the same cores. The exported graph
is the network proper (`TextureNetwork.synthesize` after `scale_inputs`): padded photo, unit noise
per scale and the noise factor in, padded picture out. Padding, noise and cropping stay in PyTorch,
so the noise for a seed, and hence the picture, is the one the PyTorch path gives (the difference
is float rounding; `tests/test_onnx.py` bounds it).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.files import atomic_output
from texture_nets.core.layers import current_style_blend, styles_blended
from texture_nets.core.pyramid import TextureNetwork
from texture_nets.core.residual import ResidualNetwork
from texture_nets.core.version import __version__

OPSET = 17
CACHE_FILES = 64  # exports kept in a cache folder (0.2-1 MB each), the least recently used pruned
EXPORT_VERSION = 3  # bump when export_onnx makes a different graph from the same module (names cache files)


# Output phase p (0: even rows, 1: odd rows) of a 3-tap convolution over a nearest-2x-upsampled,
# reflection-padded signal, as 3 taps over the low-resolution signal padded by replication:
# even output 2m = w0·x[m-1] + (w1+w2)·x[m], odd 2m+1 = (w0+w1)·x[m] + w2·x[m+1] (x[-1], x[H] replicated).
_PHASE_TAPS = torch.tensor([[[1.0, 0, 0], [0, 1, 1], [0, 0, 0]],
                            [[0.0, 0, 0], [1, 1, 0], [0, 0, 1]]])  # [phase, new tap, original tap]


def upsampled_conv_weights(weight: torch.Tensor) -> torch.Tensor:
    """The 3x3 kernels (O, I, 3, 3) that, applied at low resolution, give conv(reflect_pad(up2(x)))
    once pixel-shuffled: (4·O, I, 3, 3), output channel o·4 + 2·row phase + column phase.

    Nearest upsampling repeats every pixel, so each of the four output phases sees only 2x2 distinct
    inputs; and the reflection of an upsampled border pixel is the pixel itself, i.e. replication at
    low resolution. The same multiply-adds, but the 4x larger upsampled tensor is never made."""
    out_channels, in_channels = weight.shape[:2]
    taps = _PHASE_TAPS.to(weight)
    return torch.einsum("pak,qbl,oikl->opqiab", taps, taps, weight).reshape(4 * out_channels, in_channels, 3, 3)


class _Exportable(nn.Module):
    """The traced function: (padded photo, noise factor, *unit noise per scale) → padded picture.

    For the pyramid, every join's first convolution is split in two, the upsampled coarse half run
    at low resolution (`upsampled_conv_weights`) and the fine half as is, then added: no upsampled
    tensor, no concatenation and two thirds less padding at the finest scale, where a 512² picture
    spends most of its time (9 % faster at width 16, benchmarks/README.md). Equal up to float rounding."""

    def __init__(self, generator: TextureNetwork | ResidualNetwork):
        super().__init__()
        self.generator = generator
        if isinstance(generator, TextureNetwork):
            for i, block in enumerate(generator.join_blocks, start=1):
                conv, coarse = block[0], generator.widths[i - 1]
                self.register_buffer(f"up_weight{i}", upsampled_conv_weights(conv.weight[:, :coarse].detach()))
                self.register_buffer(f"up_bias{i}", conv.bias.detach().repeat_interleave(4))
                self.register_buffer(f"fine_weight{i}", conv.weight[:, coarse:].detach().clone())

    def forward(self, padded: torch.Tensor, factor: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        if self.generator.num_styles > 1:  # the style weights come first: every conditional norm blends with them
            with styles_blended(rest[0]):
                return self.picture(padded, factor, list(rest[1:]))
        return self.picture(padded, factor, list(rest))

    def picture(self, padded: torch.Tensor, factor: torch.Tensor, noise: list[torch.Tensor]) -> torch.Tensor:
        """The generator's picture of the padded photo and noise."""
        g = self.generator
        inputs = g.scale_inputs(padded, noise, factor)
        return g.synthesize(inputs, self.join) if isinstance(g, TextureNetwork) else g.synthesize(inputs)

    def join(self, i: int, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """`TextureNetwork.join` without upsampling or concatenating."""
        norms, block = self.generator.join_norms[i - 1], self.generator.join_blocks[i - 1]
        coarse = F.pad(norms["coarse"](coarse), (1, 1, 1, 1), mode="replicate")
        fine = F.pad(norms["fine"](fine), (1, 1, 1, 1), mode="reflect")
        x = F.pixel_shuffle(F.conv2d(coarse, getattr(self, f"up_weight{i}"), getattr(self, f"up_bias{i}")), 2)
        x = x + F.conv2d(fine, getattr(self, f"fine_weight{i}"))
        for layer in list(block)[1:]:  # the block after its first convolution
            x = layer(x)
        return x


def available() -> bool:
    """Whether onnxruntime (and onnx, for the export) are installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def exportable(generator: torch.nn.Module) -> bool:
    """Whether `generator` can run through ONNX Runtime here (a stylization generator of either kind)."""
    return isinstance(generator, (TextureNetwork, ResidualNetwork)) and not generator.config.texture_only



def export_onnx(generator: TextureNetwork | ResidualNetwork) -> bytes:
    """The generator as an ONNX model (bytes) with dynamic batch, height and width. Inputs: `photo`
    (N,3,H,W in 0..1, H and W multiples of the generator's `multiple`), `noise_factor` (a scalar),
    for a network of several styles `style` (one weight per style, summing to 1), and `noise0` …
    (unit Gaussian noise per scale, N,C,H/2^k,W/2^k); output `picture` (N,3,H,W in 0..1)."""
    if not exportable(generator):
        raise TextureNetsError("ONNX export is for stylization generators (not texture synthesis)")
    generator = as_cpu_fp32(generator)
    size = max(generator.padded_size(1, 1))
    padded = torch.rand(1, 3, size, size)
    noise = generator.make_noise(1, size, size, device="cpu")
    names = [f"noise{s}" for s in range(len(noise))] if generator.config.noise_channels else []
    styles = generator.num_styles
    style = [torch.full((styles,), 1.0 / styles)] if styles > 1 else []
    axes = {"photo": {0: "batch", 2: "height", 3: "width"}, "picture": {0: "batch", 2: "height", 3: "width"}}
    axes.update({name: {0: "batch", 2: f"height{s}", 3: f"width{s}"} for s, name in enumerate(names)})
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes about instance norm in training mode
        torch.onnx.export(_Exportable(generator), (padded, torch.tensor(1.0), *style, *(noise if names else [])),
                          buffer, input_names=["photo", "noise_factor", *(["style"] if style else []), *names],
                          output_names=["picture"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return with_metadata(buffer.getvalue(), generator)


def with_metadata(model: bytes, generator: TextureNetwork | ResidualNetwork) -> bytes:
    """The ONNX model with what a program running it needs to know, as metadata properties: the
    multiple its photo's sides must be padded to, its styles, its training noise factor and release."""
    import onnx  # onnx: loaded only to export
    proto = onnx.load_from_string(model)
    names = generator.style_names
    onnx.helper.set_model_props(proto, {
        "multiple": str(generator.multiple), "noise_factor": repr(float(generator.config.noise_factor)),
        "noise_channels": str(generator.config.noise_channels), "style_names": ",".join(names),
        "texture_nets_version": __version__})
    return proto.SerializeToString()


class OnnxGenerator:
    """A generator run by ONNX Runtime, called like the module: (photos, noise_factor, generator)."""

    def __init__(self, generator: TextureNetwork | ResidualNetwork, threads: int | None = None,
                 cache_dir: str | os.PathLike | None = None, spin: bool = True):
        self.torch_generator = as_cpu_fp32(generator)
        self.config = generator.config
        self.spin = spin  # ONNX Runtime's threads spin between operators: fastest alone, wasteful when sharing
        self.session = self._session(threads or torch.get_num_threads(), cache_dir)
        self.inputs = {i.name for i in self.session.get_inputs()}  # the export drops unused ones (no noise)

    def _session(self, threads: int, cache_dir: str | os.PathLike | None):
        """An ONNX Runtime session of this generator, from `cache_dir`'s export if it holds one
        (keyed by the weights). A cached export ONNX Runtime cannot load (truncated, overwritten) is
        deleted and exported again: kept, it would fail every later run, and `--engine auto` would
        fall back to PyTorch for good."""
        path = None if cache_dir is None else Path(cache_dir) / f"{weights_digest(self.torch_generator)}.onnx"
        cached = read_cached(path) if path is not None else None
        if cached is not None:
            try:
                session = self._new_session(cached, threads)
                self.onnx_bytes = cached
                return session
            except Exception as exc:  # noqa: BLE001 — onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
                warnings.warn(f"the cached ONNX export {path} is damaged ({type(exc).__name__}): exporting it again",
                              stacklevel=3)
                with contextlib.suppress(OSError):
                    path.unlink()
        self.onnx_bytes = self._export(path)  # the ONNX it runs (the web page serves it too)
        return self._new_session(self.onnx_bytes, threads)

    def _new_session(self, model: bytes, threads: int):
        """An ONNX Runtime session running `model` on the CPU with `threads` threads."""
        import onnxruntime as ort  # ONNX Runtime: loaded only for the ONNX engine
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                                   f"ORT_ENABLE_{optimization_level(self.torch_generator)}")
        options.intra_op_num_threads = threads
        if not self.spin:  # idle threads sleep instead of spinning: the CPU goes to other work meanwhile
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def _export(self, path: Path | None) -> bytes:
        """The generator exported, and kept at `path` (the cache, pruned) unless it is None."""
        model = export_onnx(self.torch_generator)
        if path is not None:
            try:
                with atomic_output(path) as tmp:
                    tmp.write_bytes(model)
                prune_cache(path.parent)
            except (OSError, TextureNetsError):  # a read-only or impossible cache is no reason to fail: run from memory
                pass
        return model

    def parameters(self):
        return self.torch_generator.parameters()

    def __call__(self, content: torch.Tensor, *, noise_factor: float | None = None,
                 generator: torch.Generator | None = None, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        g = self.torch_generator
        batch, height, width = g.check_input(content, None, 1)
        padded_h, padded_w = g.padded_size(height, width)
        if noise is None and self.config.noise_channels:
            noise = g.make_noise(batch, padded_h, padded_w, generator=generator, device="cpu")
        factor = self.config.noise_factor if noise_factor is None else noise_factor
        feed = {"photo": g.pad(content.cpu().float(), padded_h, padded_w).numpy(),
                "noise_factor": torch.tensor(float(factor)).numpy()}
        feed.update({f"noise{s}": n.float().numpy() for s, n in enumerate(noise or [])})
        if g.num_styles > 1:
            blend = current_style_blend()
            if blend is None:
                raise ValueError("a network of several styles needs the style to use: style=<one weight per style>")
            feed["style"] = blend.float().cpu().numpy()
        (picture,) = self.session.run(["picture"], {k: v for k, v in feed.items() if k in self.inputs})
        return torch.from_numpy(picture)[:, :, :height, :width]


def optimization_level(generator: TextureNetwork | ResidualNetwork) -> str:
    """ONNX Runtime's graph optimisation for this generator: 'ALL' where its full-resolution layers
    are as wide as a multiple of 16 channels, else 'EXTENDED'.

    ALL runs convolutions in a blocked layout (NCHWc, 16 floats a block on AVX-512) and pays two
    reorders around every instance norm and pad; layers a whole number of blocks wide earn that back,
    thinner ones do not. Measured at 512² on 2 cores, medians of 15 interleaved calls, two runs: width 16
    100–102 ms (ALL) vs 110–113 (EXTENDED); the paper's widths (48 at full resolution) 277–278 vs 295–296;
    width 12 90–92 vs 87; the residual network (32) 477 vs 605."""
    full_resolution = generator.widths[-1] if isinstance(generator, TextureNetwork) else generator.config.channels
    return "ALL" if full_resolution % 16 == 0 else "EXTENDED"


def read_cached(path: Path) -> bytes | None:
    """The export cached at `path`, marked as recently used (the last to be pruned); None if there is
    none (or it cannot be read)."""
    try:
        model = path.read_bytes()
    except OSError:  # not there (or unreadable, or a folder): exported again
        return None
    with contextlib.suppress(OSError):
        os.utime(path)
    return model


def prune_cache(cache_dir: Path) -> None:
    """Delete all but the CACHE_FILES most recently used exports in `cache_dir`: every new checkpoint,
    and every new version of texture_nets, adds one, and nothing else would ever remove them."""
    exports = sorted(cache_dir.glob("*.onnx"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for stale in exports[CACHE_FILES:]:
        with contextlib.suppress(OSError):  # another process may have pruned it first
            stale.unlink()


def as_cpu_fp32(generator: nn.Module) -> nn.Module:
    """The generator in eval mode on the CPU in float32: itself if it is already, else a copy (the
    caller's module, perhaps still training on a GPU, is left as it was)."""
    weight = next(generator.parameters())
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        generator = copy.deepcopy(generator).float().cpu()
    return generator.eval()


def weights_digest(generator: nn.Module) -> str:
    """A short hash of a generator's configuration and weights (names the ONNX cache file)."""
    # the module's repr (its layers and their padding) and the export's version: an ONNX file cached by
    # an older graph of the same weights is never served again
    digest = hashlib.sha256(f"{generator!r}|{torch.__version__}|{__version__}|{OPSET}|{EXPORT_VERSION}".encode())
    for name, tensor in sorted(generator.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:24]


def onnx_cache_dir(environ=os.environ) -> Path:
    """Where exported ONNX models are kept between runs ($XDG_CACHE_HOME/texture_nets/onnx)."""
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "texture_nets" / "onnx"
