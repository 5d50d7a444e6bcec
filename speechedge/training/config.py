"""Typed recipe configs: a frozen dataclass per recipe, read from TOML with ``--set key=value`` overrides.

Nested dataclass fields (the ``frontend``: :class:`speechedge.features.FrontendConfig`) are TOML tables
(``[frontend]``) and are overridden with dotted keys (``--set frontend.n_mels=80``). Values are type-checked
where they are read; an unknown key names the nearest valid one. Path fields (names ending in ``_manifest``
or ``_dir``) are made absolute when the config is loaded, so that an experiment's ``config.json`` works from
any working directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from pathlib import Path

__all__ = ["load_config", "apply_overrides", "config_from_dict", "config_to_dict", "resolve_paths", "check_ranges"]


def check_ranges(config, *, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = ()) -> None:
    """A ``ValueError`` naming the first field of ``positive`` that is not a finite number > 0, or of
    ``non_negative`` that is not a finite number >= 0: the range checks of a recipe's ``__post_init__``."""
    import math

    for names, ok, what in ((positive, lambda v: v > 0, "positive"), (non_negative, lambda v: v >= 0, ">= 0")):
        for name in names:
            v = getattr(config, name)
            if not (math.isfinite(v) and ok(v)):
                raise ValueError(f"{name} must be {what}, got {v}")


def _is_path_field(name: str) -> bool:
    return name.endswith("_manifest") or name.endswith("_dir")


def _unknown(key: str, known, where: str) -> ValueError:
    near = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(sorted(known))}"
    return ValueError(f"{where}: unknown key {key!r}{hint}")


def _strip_optional(tp):
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(value, tp, name: str, where: str):
    """A TOML value or a ``--set`` string -> a value of type ``tp`` (``ValueError`` naming the key)."""
    tp, optional = _strip_optional(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise ValueError(f"{where}: {name} cannot be empty")
    bad = ValueError(f"{where}: {name}={value!r} is not a valid {getattr(tp, '__name__', tp)}")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{where}: {name}={value!r}; expected one of {list(args)}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    if origin is tuple:
        inner = args[0] if args else str
        # "5,25" on the command line; "[5, 25]" / "(5, 25)" as TOML or Python would write it
        items = value.strip().strip("[]()").split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise bad
        return tuple(_coerce(v, inner, name, where) for v in items if v != "")
    raise ValueError(f"{where}: {name}: unsupported field type {tp}")


def config_from_dict(cls, data: dict, where: str | None = None):
    """Build ``cls`` from a plain dict (TOML, ``config.json``, a checkpoint), nested dataclasses included."""
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a table/object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key == "recipe":  # the recipe name config.json carries
            continue
        if key not in fields:
            raise _unknown(key, fields, where)
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, tp) and isinstance(value, dict):
                # a partial table fills in from this recipe's default for the field (the ASR recipe's [augment]
                # and [frontend] defaults differ from the classes' own), as --set does
                f = fields[key]
                base = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                if dataclasses.is_dataclass(base):
                    value = {**config_to_dict(base), **value}
            kwargs[key] = value if isinstance(value, tp) else config_from_dict(tp, value, f"{where} [{key}]")
        else:
            kwargs[key] = _coerce(value, tp, key, where)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None


def config_to_dict(config) -> dict:
    """Plain dict (nested dataclasses as dicts) for ``config.json`` and checkpoints."""
    return dataclasses.asdict(config)


def apply_overrides(config, overrides: list[str] | None):
    """``["lr=0.01", "frontend.n_mels=80"]`` -> a new config; unknown keys and bad values raise ``ValueError``."""
    data = config_to_dict(config)
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node, cls = data, type(config)
        for p in parents:
            sub = {f.name: f for f in dataclasses.fields(cls)}
            if p not in sub or not isinstance(node.get(p), dict):
                raise _unknown(p, [f for f in sub if isinstance(node.get(f), dict)], "--set")
            cls = typing.get_type_hints(cls)[p]
            node = node[p]
        names = {f.name for f in dataclasses.fields(cls)}
        if leaf not in names:
            raise _unknown(leaf, names, f"--set {key}")
        node[leaf] = _coerce(value, typing.get_type_hints(cls)[leaf], key, "--set")
    return config_from_dict(type(config), data, "--set")


def resolve_paths(config, base: Path | None = None):
    """Path fields made absolute (relative to ``base``, default the working directory)."""
    base = Path.cwd() if base is None else Path(base)
    changes = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if _is_path_field(f.name) and isinstance(v, str) and v and not Path(v).is_absolute():
            changes[f.name] = str((base / v).resolve())
    return dataclasses.replace(config, **changes) if changes else config


def load_config(cls, path: str | Path | None = None, overrides: list[str] | None = None):
    """Build ``cls`` from a TOML file (top-level keys = fields, ``[frontend]`` table) and ``key=value``
    overrides; relative paths resolve from the working directory."""
    data: dict = {}
    where = cls.__name__
    if path:
        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such config file")
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML ({e})") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e})") from None
    config = config_from_dict(cls, data, where)
    return resolve_paths(apply_overrides(config, overrides or []))
