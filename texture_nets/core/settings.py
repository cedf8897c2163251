"""Settings as dataclasses: fields carry their help and policy as metadata, values are checked and
coerced from files and flags, unknown keys are refused with a "did you mean"."""

from __future__ import annotations

import argparse
import difflib
import math
import reprlib
import types
import typing
from dataclasses import MISSING, asdict, field, fields

from texture_nets.core.errors import TextureNetsError


def setting(default, help: str, **meta):
    """A dataclass field with its help text (the command-line flags are generated from these) and its
    policy as metadata: `choices`, `append` (a repeatable flag) and, for training's fields,
    `resumable` (may change when a run resumes), `recipe` (part of what a recipe trains) and
    `per_phase` (a phase of a phased recipe may set it)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


def check_fields(config) -> None:
    """Checks every config dataclass needs: values among a field's choices, numbers finite."""
    for f in fields(config):
        value = getattr(config, f.name)
        if f.metadata.get("choices") and value not in f.metadata["choices"]:
            raise TextureNetsError(f"{f.name} must be one of {', '.join(f.metadata['choices'])}, got {value!r}")
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise TextureNetsError(f"{f.name} must be a finite number, got {value!r}")


def field_types(cls) -> dict[str, type]:
    """The resolved type of every field of a config dataclass."""
    return typing.get_type_hints(cls)


def coerce(name: str, value, kind):
    """Check/convert one config value from a file to the field's type, or raise a clear error."""
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise TextureNetsError(f"config key {name}: expected a list, got {value!r}")
        return [coerce(name, v, item) for v in value]
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


TEXT_BOOLS = {"": False, "0": False, "false": False, "off": False, "no": False,
              "1": True, "true": True, "on": True, "yes": True}


def coerce_text(name: str, value, kind):
    """`coerce` for a value that may come as text (a query string, a form, a JSON message): "on" or
    "false" for a bool, "0.5" for a number, "" for an optional field left empty (None)."""
    optional = isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)
    kind = _flag_type(kind)
    if isinstance(value, str):
        text = value.strip()
        if text == "" and optional:
            return None
        if kind is bool:
            if text.lower() not in TEXT_BOOLS:
                raise TextureNetsError(f"{name} must be true or false, got {reprlib.repr(value)}")
            return TEXT_BOOLS[text.lower()]
        if kind in (int, float):
            try:
                value = kind(text)
            except ValueError:
                raise TextureNetsError(f"{name} must be a number, got {reprlib.repr(value)}") from None
    if value is None and optional:
        return None
    return coerce(name, value, kind)


def check_keys(keys, cls, where: str = "config") -> None:
    """Refuse keys that are not fields of `cls`, suggesting the closest one."""
    names = [f.name for f in fields(cls)]
    for key in keys:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise TextureNetsError(f"unknown {where} option {key!r}{hint}")


def default_of(f) -> object:
    """The default value of a dataclass field."""
    return f.default_factory() if f.default is MISSING else f.default


def config_to_toml(config) -> str:
    """A resolved settings dataclass as TOML (written next to a run's outputs; printed by --dry_run)."""
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


def make_settings(cls, values: dict):
    """A `cls` settings dataclass from `values` over its defaults: unknown keys refused, validated."""
    check_keys(values, cls)
    return cls(**values).validate()


def upgrade_legacy(values: dict) -> dict:
    """`values` with the keys of older releases translated: `amp` (a bool, CUDA-only mixed
    precision) became `precision` ('auto' / 'fp32'), so old recipes and checkpoints still load (checkpoints through core/checkpoint.py's migrate)."""
    if "amp" not in values:
        return values
    values = dict(values)
    amp = values.pop("amp")
    if not isinstance(amp, bool):
        raise TextureNetsError(f"config key amp: expected true/false, got {amp!r} (it is now precision = "
                               f"'auto' | 'fp32' | 'bf16' | 'fp16')")
    values.setdefault("precision", "auto" if amp else "fp32")
    return values


def comma_list(item_type):
    """An argparse type: 'a,b,c' as a list of `item_type` ('' an empty list); an empty item (',,',
    'a,') is refused, not dropped: a list that silently shrinks would change what a run means."""
    def parse(text: str):
        if not text.strip():
            return []
        parts = [part.strip() for part in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"expected comma-separated {item_type.__name__}s, got {text!r} "
                                             f"(an empty item)")
        try:
            return [item_type(part) for part in parts]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected comma-separated {item_type.__name__}s, got {text!r}") from exc
    return parse


def add_config_arguments(parser, cls, exclude: tuple[str, ...] = ()) -> None:
    """One flag per field of the settings dataclass `cls` that has help text (fields without are set by
    the program, not the user), with the field's help, type, choices and default. Flags left out stay
    unset (absent from the parsed namespace), so a caller knows which were given; `exclude`: fields
    another call adds (a subclass's inherited ones)."""
    types = field_types(cls)
    for f in fields(cls):
        if "help" not in f.metadata or f.name in exclude:
            continue
        kind, meta, default = _flag_type(types[f.name]), f.metadata, default_of(f)
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        help_text = meta["help"] + ("" if default is None else f" (default: {shown!r})")
        kwargs = dict(default=argparse.SUPPRESS, help=help_text.replace("%", "%%"))
        if kind is bool:
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(kind) is list:
            (item,) = typing.get_args(kind)
            if meta.get("append"):
                parser.add_argument(f"--{f.name}", action="append", metavar="PATH", **kwargs)
            else:
                parser.add_argument(f"--{f.name}", type=comma_list(item), metavar="A,B,...", **kwargs)
        else:
            extra = {key: meta[key] for key in ("nargs", "const") if key in meta}
            parser.add_argument(f"--{f.name}", type=kind, choices=meta.get("choices"), **extra, **kwargs)


def _flag_type(kind):
    """The type a flag parses: `int | None` parses an int (left out, the field keeps None)."""
    if isinstance(kind, types.UnionType):
        (kind,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    return kind


def given_settings(args: argparse.Namespace, cls) -> dict:
    """The fields of `cls` given as flags generated by add_config_arguments."""
    return {f.name: getattr(args, f.name) for f in fields(cls) if "help" in f.metadata and hasattr(args, f.name)}


