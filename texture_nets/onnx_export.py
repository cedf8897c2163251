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
import uuid
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import TextureNetsError
from .generator import TextureNetwork
from .residual import ResidualNetwork

OPSET = 17


class _Exportable(nn.Module):
    """The traced function: (padded photo, noise factor, *unit noise per scale) → padded picture."""

    def __init__(self, generator: TextureNetwork | ResidualNetwork):
        super().__init__()
        self.generator = generator

    def forward(self, padded: torch.Tensor, factor: torch.Tensor, *noise: torch.Tensor) -> torch.Tensor:
        return self.generator.synthesize(self.generator.scale_inputs(padded, list(noise), factor))


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
    """The generator as an ONNX model (bytes) with dynamic batch, height and width."""
    if not exportable(generator):
        raise TextureNetsError("ONNX export is for stylization generators (not texture synthesis)")
    generator = as_cpu_fp32(generator)
    size = max(generator.padded_size(1, 1))
    padded = torch.rand(1, 3, size, size)
    noise = generator.make_noise(1, size, size, device="cpu")
    names = [f"noise{s}" for s in range(len(noise))] if generator.config.noise_channels else []
    axes = {"photo": {0: "batch", 2: "height", 3: "width"}, "picture": {0: "batch", 2: "height", 3: "width"}}
    axes.update({name: {0: "batch", 2: f"height{s}", 3: f"width{s}"} for s, name in enumerate(names)})
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes about instance norm in training mode
        torch.onnx.export(_Exportable(generator), (padded, torch.tensor(1.0), *(noise if names else [])), buffer,
                          input_names=["photo", "noise_factor", *names], output_names=["picture"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return buffer.getvalue()


class OnnxGenerator:
    """A generator run by ONNX Runtime, called like the module: (photos, noise_factor, generator)."""

    def __init__(self, generator: TextureNetwork | ResidualNetwork, threads: int | None = None, cache_dir: str | os.PathLike | None = None):
        import onnxruntime as ort
        self.torch_generator = as_cpu_fp32(generator)
        self.config = generator.config
        model = self._model_bytes(cache_dir)
        options = ort.SessionOptions()
        # EXTENDED, not ALL: ALL's blocked (NCHWc) layout pays two reorders around every instance
        # norm and pad of these thin layers; measured at 512², 2 cores: 165 vs 202 ms (max_channels 12)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}  # the export drops unused ones (no noise)

    def _model_bytes(self, cache_dir: str | os.PathLike | None) -> bytes:
        """The exported model, from `cache_dir` if it holds this generator's export (keyed by its weights)."""
        if cache_dir is None:
            return export_onnx(self.torch_generator)
        digest = weights_digest(self.torch_generator)
        path = Path(cache_dir) / f"{digest}.onnx"
        if path.is_file():
            return path.read_bytes()
        model = export_onnx(self.torch_generator)
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(model)
            os.replace(tmp, path)
        except OSError:  # a read-only or impossible cache is no reason to fail: run from memory
            with contextlib.suppress(OSError):
                tmp.unlink()
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
        (picture,) = self.session.run(["picture"], {k: v for k, v in feed.items() if k in self.inputs})
        return torch.from_numpy(picture)[:, :, :height, :width]


def as_cpu_fp32(generator: nn.Module) -> nn.Module:
    """The generator in eval mode on the CPU in float32: itself if it is already, else a copy (the
    caller's module, perhaps still training on a GPU, is left as it was)."""
    weight = next(generator.parameters())
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        generator = copy.deepcopy(generator).float().cpu()
    return generator.eval()


def weights_digest(generator: nn.Module) -> str:
    """A short hash of a generator's configuration and weights (names the ONNX cache file)."""
    from . import __version__  # a new texture_nets may export another graph from the same weights
    digest = hashlib.sha256(f"{generator.config!r}|{torch.__version__}|{__version__}|{OPSET}".encode())
    for name, tensor in sorted(generator.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:24]
