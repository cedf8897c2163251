"""Recipes trained in phases: one command runs a style's whole training from scratch.

Some styles train best in phases with different settings (a first phase with content at relu2_2 as
well as relu4_2, then relu4_2 alone at another style weight...), each a run of its own: its own
learning-rate schedule and a fresh Adam, starting from the weights the phase before ended with
(`init_from`). A recipe lists its earlier phases as TOML tables; its top-level settings are the last
phase's, which makes the style's checkpoint:

    style_weight = 1.05          # the last phase, saved as <checkpoint_dir>/<name>.pt
    num_iterations = 500
    [[phases]]                   # first: <checkpoint_dir>/<name>_phase1.pt
    num_iterations = 4000
    stop_at = 2500               # 2,500 steps of a 4,000-step schedule
    style_weight = 1.5
    content_layers = ["relu2_2", "relu4_2"]

A phase table overrides the top-level settings for that run only, except those that say what is
trained and where (PHASE_FIXED): every phase trains the same network on the same photos and style.
"""

from __future__ import annotations

import sys
from pathlib import Path

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.settings import upgrade_legacy
from texture_nets.training.config import PHASE_FIXED, checked_values

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_PHASES = 16


def read_phases(value: object, where: str) -> list[dict]:
    """The `[[phases]]` of a recipe file as checked, typed override dicts, or a clear error."""
    if not isinstance(value, list) or not all(isinstance(table, dict) for table in value):
        raise TextureNetsError(f"{where}: phases must be a list of tables ([[phases]])")
    if not 1 <= len(value) <= MAX_PHASES:
        raise TextureNetsError(f"{where}: between 1 and {MAX_PHASES} [[phases]], got {len(value)}")
    phases = []
    for number, table in enumerate(value, 1):
        fixed = sorted(PHASE_FIXED & set(table))
        if fixed:
            raise TextureNetsError(f"{where}: [[phases]] {number} sets {', '.join(fixed)}, which every phase "
                                   f"shares: set it at the top level")
        phases.append(checked_values(table, where=f"{where} [[phases]] {number}"))
    return phases


def phase_name(name: str, number: int) -> str:
    """The name an earlier phase's files go under: <name>_phase<number>."""
    return f"{name}_phase{number}"


def phase_runs(values: dict, phases: list[dict], name: str, folder: Path) -> list[dict]:
    """The file-level settings of each run of a phased recipe, in order (command-line flags go on top
    of each, as for any recipe): the top-level `values` overridden by the phase's table, each earlier
    phase named <name>_phase<k> (its files in `folder`), each run starting from the checkpoint the run
    before wrote; the last run is the recipe's own settings, named `name`."""
    runs, previous = [], values.get("init_from", "")
    for number, phase in enumerate(phases, 1):
        run = {**values, **phase, "name": phase_name(name, number), "init_from": previous}
        runs.append(run)
        previous = str(folder / f"{run['name']}.pt")
    runs.append({**values, "name": name, "init_from": previous})
    return runs


def resolve_preset(name_or_path: str) -> Path:
    """A config file path, or the name of a preset in configs/ (with or without .toml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    folders = (Path.cwd() / "configs", Path(__file__).resolve().parents[2] / "configs")
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
        values["phases"] = read_phases(phases, path.name)
    return values
