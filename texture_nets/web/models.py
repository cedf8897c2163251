"""The web app's models: checkpoints found by name (the user's folder first, then the shipped
styles), their prepared generators and gallery thumbnails, cached per file version."""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

import torch

from texture_nets.core.checkpoint import (
    SHIPPED_DIR,
    generator_from_checkpoint,
    load_checkpoint,
    load_generator,
    total_steps,
)
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import photo_batch, tensor_to_image
from texture_nets.inference.engine import Engine, prepare_generator, style_weights_for
from texture_nets.inference.onnx_export import as_cpu_fp32, export_onnx, exportable, with_metadata
from texture_nets.inference.options import StylizeOptions
from texture_nets.web.limits import UserError, log, shown, shrink_onnx_arena

STATIC = Path(__file__).resolve().parent / "static"
MAX_CHECKPOINT_BYTES = 2**30  # a checkpoint file larger than this is not one of ours (they are < 10 MB)


class ModelStore:
    """Checkpoints by name (the user's folder first, then the shipped styles), prepared generators
    and thumbnails cached per file (a new version of a file replaces the old entries). A file that
    cannot be used (unreadable, damaged, absurd, a link loop) is left out of the gallery with one
    logged warning per version, and answers 404 by name."""

    def __init__(self, config):
        self.config = config
        self._lock = threading.Lock()
        self._generators: dict[str, tuple[tuple, object]] = {}
        self._thumbnails: dict[str, tuple[tuple, bytes]] = {}
        self._info: dict[str, tuple[tuple, dict | None]] = {}
        self._onnx: dict[str, tuple[tuple, bytes]] = {}

    def folders(self) -> list[Path]:
        folders = [Path(self.config.checkpoint_dir)]
        if not self.config.shipped:
            return folders
        try:
            same = SHIPPED_DIR.resolve() == folders[0].resolve()
        except (OSError, RuntimeError):  # e.g. a symbolic-link loop
            same = False
        return folders if same else folders + [SHIPPED_DIR]

    def paths(self) -> dict[str, Path]:
        """name → checkpoint file; a name in the user's folder hides a shipped one."""
        found: dict[str, Path] = {}
        for folder in self.folders():
            try:
                files = sorted(folder.glob("*.pt")) if folder.is_dir() else []
            except OSError as exc:
                log.warning("cannot list the models in %s (%s)", folder, exc)
                continue
            for path in files:
                if not path.name.endswith(".resume.pt"):
                    found.setdefault(path.stem, path)
        return found

    def path(self, name: str) -> Path:
        """The checkpoint of a listed model; names never reach the file system otherwise."""
        path = self.paths().get(name)
        if path is None:
            raise UserError(f"unknown model {shown(name)}: GET /api/models lists them", 404)
        return path

    @staticmethod
    def _version(path: Path) -> tuple:
        """What identifies a file's version (OSError if it cannot be read, TextureNetsError if too large)."""
        stat = path.stat()
        if stat.st_size > MAX_CHECKPOINT_BYTES:
            raise TextureNetsError(f"{path}: {stat.st_size / 2**30:.1f} GB, too large to be a texture_nets checkpoint")
        return stat.st_mtime_ns, stat.st_size, stat.st_ino

    def info(self, name: str, path: Path) -> dict | None:
        """What the gallery shows of a checkpoint, or None for one that cannot stylize photos."""
        try:
            version = self._version(path)
        except (OSError, TextureNetsError) as exc:  # unreadable, a link loop, removed since listed, huge
            self._skip(path, exc, ("unreadable", str(exc)))
            return None
        cached = self._info.get(str(path))
        if cached is not None and cached[0] == version:
            return cached[1]
        try:
            info = self._describe(name, path)
        except Exception as exc:  # noqa: BLE001 — any damaged file: left out, said once per version
            log.warning("models: skipping %s: %s", path, exc if isinstance(exc, TextureNetsError)
                        else f"{type(exc).__name__}: {exc}")
            info = None
        self._info[str(path)] = (version, info)
        return info

    def _skip(self, path: Path, exc: Exception, version: tuple) -> None:
        cached = self._info.get(str(path))
        if cached is None or cached[0] != version:
            log.warning("models: skipping %s: %s", path, exc)
            self._info[str(path)] = (version, None)

    def _describe(self, name: str, path: Path) -> dict | None:
        checkpoint = load_checkpoint(path)
        generator = generator_from_checkpoint(checkpoint, str(path))  # the weights fit the generator it describes
        model, style = checkpoint["model"], checkpoint.get("style") or {}
        return None if model.get("texture_only") else {
            "name": name, "style": str(style.get("name", name)), "steps": total_steps(checkpoint),
            "noise_factor": model.get("noise_factor"), "shipped": _same_folder(path.parent, SHIPPED_DIR),
            "styles": list(model.get("style_names", ())),  # a network of several: the page's blend control
            "thumbnail": f"/api/models/{name}/thumbnail.png", **onnx_inputs(name, generator)}

    def models(self) -> list[dict]:
        return [info for name, path in self.paths().items() if (info := self.info(name, path)) is not None]

    def generator(self, name: str, live: bool = False):
        """The prepared generator of a model (ONNX Runtime on the CPU where installed); 404 for a
        file that cannot be used. `live`: a separate one for live sessions, whose ONNX Runtime threads
        sleep between operators instead of spinning: the browsers of a machine that serves itself share
        its cores (measured at 640x480: 3.5 frames/s spinning, 4.4 not), where a single photo is
        ~10 % faster with spinning."""
        path = self.path(name)
        key = f"{path}|live" if live else str(path)
        with self._lock:
            try:
                version = self._version(path)
                cached = self._generators.get(key)
                if cached is not None and cached[0] == version:
                    return cached[1]
                generator = load_generator(path)
            except Exception as exc:  # noqa: BLE001 — damaged, absurd, unreadable: not a usable model
                reason = exc if isinstance(exc, TextureNetsError) else f"{type(exc).__name__}: {exc}"
                log.warning("models: %s cannot be used: %s", path, reason)
                raise UserError(f"model {shown(name)} cannot be used (a damaged checkpoint): GET /api/models lists "
                                f"the usable ones", 404) from exc
            if generator.config.texture_only:
                raise UserError(f"{name} is a texture-synthesis model: it takes no photo")
            prepared = shrink_onnx_arena(prepare_generator(generator, self.config.device, engine=self.config.engine,
                                                           onnx_cache=self.config.onnx_cache or None,
                                                           onnx_spin=not live))
            self._generators[key] = (version, prepared)
            return prepared

    def check_style(self, name: str, style: str) -> None:
        """Refuse (400) a style choice that does not fit the model, before any upload is read."""
        info = self.info(name, self.path(name))
        if info is None:
            raise UserError(f"model {shown(name)} cannot be used: GET /api/models lists the usable ones", 404)
        try:
            style_weights_for(tuple(info["styles"]), style)
        except TextureNetsError as exc:
            raise UserError(str(exc).replace("--style ", "style ")) from exc

    def onnx_model(self, name: str) -> bytes:
        """The model as ONNX with its metadata (onnx_export), exported once per file version: what
        the page runs in the browser with onnxruntime-web."""
        generator = self.generator(name)  # 404 for unknown or damaged models, as everywhere
        module = getattr(generator, "torch_generator", generator)
        if not exportable(module):
            raise UserError(f"model {shown(name)} cannot be exported to ONNX", 404)
        path = self.path(name)
        version = self._generators[str(path)][0]
        with self._lock:
            cached = self._onnx.get(str(path))
            if cached is None or cached[0] != version:
                # the ONNX engine's own export where it has one (OnnxGenerator), else one made now
                model = getattr(generator, "onnx_bytes", None) or export_onnx(as_cpu_fp32(module))
                cached = self._onnx[str(path)] = (version, with_metadata(model, module))
        return cached[1]

    def thumbnail(self, name: str) -> bytes:
        generator = self.generator(name)
        path = self.path(name)
        version = self._generators[str(path)][0]
        cached = self._thumbnails.get(str(path))
        if cached is None or cached[0] != version:
            module = getattr(generator, "torch_generator", generator)
            first = ",".join(module.style_names[:1])  # several styles: the first
            with torch.inference_mode():
                out = Engine(generator, StylizeOptions(seed=0, style=first)).stylize(photo_batch(STATIC / "sample.jpg"))
            cached = self._thumbnails[str(path)] = (version, png_bytes(out))
        return cached[1]


def onnx_inputs(name: str, generator) -> dict:
    """What the page needs to feed the model's ONNX export in the browser: its URL, the multiple
    its photo's sides are padded to, and each noise input's channels and scale divisor (finest first);
    {} for a network ONNX Runtime cannot run."""
    if not exportable(generator):
        return {}
    side = 2 * generator.multiple
    height, width = generator.padded_size(side, side)
    noise = generator.make_noise(1, height, width, device="cpu") if generator.config.noise_channels else []
    return {"onnx": f"/api/models/{name}/model.onnx", "multiple": generator.multiple,
            "noise": [[int(n.shape[1]), height // int(n.shape[2])] for n in noise]}


def data_url(images: torch.Tensor) -> str:
    """An image tensor as a data: URL (PNG), for JSON."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(images)).decode("ascii")


def png_bytes(images: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    tensor_to_image(images).save(buffer, format="PNG")
    return buffer.getvalue()


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False
