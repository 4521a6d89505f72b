"""Experiment profiles: load, merge and validate ``configs/<profile>.toml``.

``configs/paper.toml`` is the schema: it holds every key with the paper's value.
Other profiles (``smoke``, ``cpu``) override a subset. :func:`load` merges
``paper <- profile <- overrides``, rejects unknown profiles and keys, and checks that
every value has the type of the paper's value (an int is accepted for a float;
list elements are checked against the paper's element type).

Examples
--------
>>> from gross.config import load
>>> cfg = load("smoke", seed=3, four_layer__repeats=2)
>>> cfg["seed"], cfg["four_layer"]["repeats"]
(3, 2)
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from typing import Any

from . import paths

__all__ = ["REFERENCE_PROFILE", "profiles", "load", "parse_overrides", "reductions", "flatten"]

#: The profile that defines the schema and the paper's values.
REFERENCE_PROFILE = "paper"

# Value constraints beyond types: key -> allowed values.
_CHOICES = {
    ("data", "source"): ("cifar10", "synthetic"),
    ("four_layer", "btd_method"): ("als", "hooi"),
    ("vgg16", "btd_method"): ("als", "hooi"),
}
# Keys that must be >= 0 (all other ints/floats must be > 0 unless listed here).
_NON_NEGATIVE = {
    ("seed",), ("num_threads",), ("data", "split_seed"), ("ap", "seed"), ("ap", "repeat"),
    ("vgg16", "n_train"), ("vgg16", "n_val"), ("vgg16", "bfs_seeded_runs"), ("imagenet", "n_val"),
    ("four_layer", "btd_ridge"), ("vgg16", "btd_ridge"),
}


# Keys that do not change any result (not listed by :func:`reductions`).
_NOT_REDUCTIONS = {
    ("device",), ("num_threads",), ("data", "path"), ("data", "eval_batch_size"), ("imagenet", "root"),
}


def profiles() -> list[str]:
    """Names of the profiles found in ``configs/`` (sorted)."""
    return sorted(p.stem for p in paths.CONFIGS.glob("*.toml"))


def _read(profile: str) -> dict:
    valid = profiles()
    if not isinstance(profile, str) or profile not in valid:
        raise ValueError(f"unknown profile {profile!r}: valid profiles are {valid}")
    with open(paths.CONFIGS / f"{profile}.toml", "rb") as fh:
        return tomllib.load(fh)


def flatten(cfg: Mapping, prefix: tuple = ()) -> dict[tuple, Any]:
    """``{("section", "key"): value, ("top_key",): value}`` view of a nested config."""
    out = {}
    for key, value in cfg.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, prefix + (key,)))
        else:
            out[prefix + (key,)] = value
    return out


def _dotted(key: tuple) -> str:
    return ".".join(key)


def _type_name(value) -> str:
    return type(value).__name__


def _check_value(key: tuple, value, reference):
    """Return ``value`` (ints promoted to float where the schema has a float) or raise."""
    name = _dotted(key)
    if isinstance(reference, bool):
        ok = isinstance(value, bool)
    elif isinstance(reference, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(reference, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif isinstance(reference, str):
        ok = isinstance(value, str)
    elif isinstance(reference, list):
        ok = isinstance(value, (list, tuple))
        if ok:
            value = list(value)
            if reference:
                value = [_check_value(key, v, reference[0]) for v in value]
    else:  # pragma: no cover - the schema only holds TOML scalars, lists and tables
        raise TypeError(f"unsupported schema type {_type_name(reference)} for {name}")
    if not ok:
        raise ValueError(
            f"config key {name!r} must be of type {_type_name(reference)} "
            f"(like the paper's value {reference!r}), got {value!r} of type {_type_name(value)}"
        )
    return value


def _check_constraints(key: tuple, value) -> None:
    name = _dotted(key)
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ValueError(f"config key {name!r} must be one of {_CHOICES[key]}, got {value!r}")
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if key in _NON_NEGATIVE or key[-1] == "drops":
                if v < 0:
                    raise ValueError(f"config key {name!r} must be >= 0, got {value!r}")
            elif v <= 0:
                raise ValueError(f"config key {name!r} must be > 0, got {value!r}")


def _merge(base: dict, update: Mapping, schema_flat: dict, source: str) -> None:
    for key, value in flatten(update).items():
        if key not in schema_flat:
            valid = sorted(_dotted(k) for k in schema_flat)
            raise ValueError(f"unknown config key {_dotted(key)!r} in {source}; valid keys are {valid}")
        value = _check_value(key, value, schema_flat[key])
        node = base
        for part in key[:-1]:
            node = node[part]
        node[key[-1]] = value


def _resolve_override(name: str, schema_flat: dict) -> tuple:
    """Map an override keyword to a schema key (see :func:`load` for the rules)."""
    if (name,) in schema_flat:
        return (name,)
    if "__" in name:
        key = tuple(name.split("__"))
        if key in schema_flat:
            return key
    sections = {k[0] for k in schema_flat if len(k) > 1}
    matches = [k for k in schema_flat if len(k) == 2 and k[0] in sections and f"{k[0]}_{k[1]}" == name]
    if not matches:
        matches = [k for k in schema_flat if len(k) > 1 and k[-1] == name]
    if len(matches) == 1:
        return matches[0]
    valid = sorted("__".join(k) for k in schema_flat)
    if len(matches) > 1:
        raise ValueError(
            f"override {name!r} is ambiguous: it matches {sorted(_dotted(k) for k in matches)}; "
            f"use section__key, one of {valid}"
        )
    raise ValueError(f"unknown config key {name!r}; valid keys are {valid}")


def parse_overrides(items) -> dict:
    """Parse command-line ``KEY=VALUE`` overrides into keyword arguments for :func:`load`.

    ``VALUE`` uses TOML syntax (``3``, ``1e-5``, ``"cpu"``, ``[4, 16]``, ``true``); a
    value that is not valid TOML is taken as a string (``device=cpu``). Keys are checked
    by :func:`load`.

    Raises
    ------
    ValueError
        An item without ``=`` or with an empty key.
    """
    out = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} must look like KEY=VALUE, e.g. four_layer__repeats=2")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value.strip()
    return out


def load(profile: str, **overrides) -> dict:
    """Load a profile, merged over the paper's settings and validated.

    Parameters
    ----------
    profile : str
        ``"smoke"``, ``"cpu"`` or ``"paper"`` (any ``configs/<name>.toml``).
    **overrides
        Values replacing the profile's. A keyword names a key as

        * a top-level key: ``seed=1``, ``device="cpu"``;
        * ``section__key``: ``four_layer__repeats=2``;
        * ``section_key``: ``data_path="/data/cifar"``, ``imagenet_root=""``;
        * a key name that occurs in exactly one section: ``bfs_runs=4``.

    Returns
    -------
    dict
        The resolved config: top-level keys plus one dict per section
        (``cfg["four_layer"]["gross_epochs"]``), and ``cfg["profile"]``.

    Raises
    ------
    ValueError
        Unknown profile (lists the valid ones), unknown or ambiguous key (lists the
        valid keys), a value of the wrong type, or a value out of range.
    """
    schema = _read(REFERENCE_PROFILE)
    schema_flat = flatten(schema)
    cfg = copy.deepcopy(schema)
    if profile != REFERENCE_PROFILE:
        _merge(cfg, _read(profile), schema_flat, f"configs/{profile}.toml")
    for name, value in overrides.items():
        key = _resolve_override(name, schema_flat)
        nested = value
        for part in reversed(key):
            nested = {part: nested}
        _merge(cfg, nested, schema_flat, "overrides")
    for key, value in flatten(cfg).items():
        _check_constraints(key, value)
    cfg["profile"] = profile
    return cfg


def reductions(cfg: Mapping, reference: str = REFERENCE_PROFILE) -> list[str]:
    """Human-readable differences between ``cfg`` and the paper profile.

    Computed by diffing against ``configs/paper.toml``, so it cannot go stale.

    Parameters
    ----------
    cfg : mapping
        A resolved config from :func:`load`.
    reference : str, default "paper"
        Profile to compare with.

    Returns
    -------
    list of str
        e.g. ``["four_layer.gross_epochs = 1 (paper: 150)", ...]``; empty for the paper profile.
    """
    ref = flatten(load(reference))
    out = []
    for key, value in flatten(cfg).items():
        if key == ("profile",) or key in _NOT_REDUCTIONS:
            continue
        if key in ref and ref[key] != value:
            out.append(f"{_dotted(key)} = {value!r} (paper: {ref[key]!r})")
    return out
