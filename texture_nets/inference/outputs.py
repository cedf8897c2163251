"""Which file each stylized input is written to."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.files import check_outputs_spare_inputs
from texture_nets.core.images import IMAGE_EXTENSIONS, find_images
from texture_nets.inference.video import VIDEO_EXTENSIONS

MEDIA_EXTENSIONS = tuple(dict.fromkeys(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS))  # what --input folders are searched for


def plan_outputs(inputs: Sequence[str | os.PathLike], output: str | os.PathLike | None,
                 model_name: str) -> list[tuple[Path, Path]]:
    """Pair each input file with its output file.

    One input file: `output` is the file to write (default: <stem>_<model>.<ext> in the current folder).
    A folder or several files: `output` is a folder (default: stylized_<model>/), mirroring sub-folders.
    Folders are searched for photos and videos (MEDIA_EXTENSIONS). Outputs keep the input's format
    unless a single output file names another extension. An output that is one of the inputs is
    refused (see `check_outputs_spare_inputs`).
    """
    sources: list[tuple[Path, Path]] = []  # (file, path relative to the output folder)
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            sources += [(f, f.relative_to(path)) for f in find_images(path, MEDIA_EXTENSIONS)]
        elif path.is_file():
            sources.append((path, Path(path.name)))
        else:
            raise TextureNetsError(f"input not found: {path}")
    single = len(inputs) == 1 and Path(inputs[0]).is_file()
    pairs = [_single_output(sources[0][0], output, model_name)] if single else _folder_outputs(sources, output, model_name)
    check_outputs_spare_inputs(pairs)
    return pairs


def _single_output(src: Path, output: str | os.PathLike | None, model_name: str) -> tuple[Path, Path]:
    """One input file's (input, output) pair: `output`, a file in it if it is a folder, or the default."""
    target = Path(output) if output else Path(f"{src.stem}_{model_name}{src.suffix}")
    if target.is_dir():
        target = target / f"{src.stem}_{model_name}{src.suffix}"
    return src, target


def _folder_outputs(sources: list[tuple[Path, Path]], output: str | os.PathLike | None,
                    model_name: str) -> list[tuple[Path, Path]]:
    """Several inputs' pairs: each file at its relative path in the output folder."""
    folder = Path(output) if output else Path(f"stylized_{model_name}")
    if folder.suffix.lower() in MEDIA_EXTENSIONS and not folder.is_dir():
        raise TextureNetsError(f"--output {folder} looks like a file, but there are {len(sources)} inputs: "
                               f"give a folder")
    pairs = [(src, folder / rel) for src, rel in sources]
    if len({dst for _, dst in pairs}) != len(pairs):
        raise TextureNetsError("two inputs would be written to the same output file (same names): "
                               "stylize them separately")
    return pairs
