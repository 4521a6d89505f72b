"""Experiment profiles: load, merge and validate ``configs/<profile>.toml``.

``configs/paper.toml`` is the schema: it holds every key with the paper's value.
Other profiles (``smoke``, ``cpu``) override a subset. :func:`load` merges
``paper <- profile <- overrides``, rejects unknown profiles and keys, and checks that
every value has the type of the paper's value (an int is accepted for a float;
list elements are checked against the paper's element type).

The loaded configuration is a read-only :class:`Profile` mapping that **records every
key read** while :func:`recording` is active: the pipeline (:mod:`gross.pipeline`)
computes the fingerprint of each stored artefact and the reductions line of each
table from the keys its step actually read, so no list of "keys a step depends on"
is kept by hand.

Examples
--------
>>> from gross.runs.config import load, recording
>>> cfg = load("smoke", seed=3, four_layer__repeats=2)
>>> with recording() as reads:
...     cfg["seed"], cfg["four_layer"]["repeats"]
(3, 2)
>>> sorted(reads)
['four_layer.repeats', 'seed']
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import copy
import functools
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from gross.utils import paths
from gross.utils.assignments import parse_assignments

__all__ = [
    "REFERENCE_PROFILE",
    "NO_EFFECT",
    "IMAGENET_MACHINE_KEYS",
    "EXECUTOR_KEYS",
    "Profile",
    "profiles",
    "load",
    "load_notebook",
    "check_notebook_parameters",
    "parse_overrides",
    "recording",
    "lookup",
    "reductions",
    "RECIPE_KEYS",
    "RECIPE_PROFILES",
    "recipe_name",
    "flatten",
]

#: The profile that defines the schema and the paper's values.
REFERENCE_PROFILE = "paper"

# Value constraints beyond types: key -> allowed values.
_CHOICES = {
    ("data", "source"): ("cifar10", "synthetic"),
    ("four_layer", "btd_method"): ("als", "hooi"),
    ("vgg16", "btd_method"): ("als", "hooi"),
    ("executor", "name"): ("serial", "local", "submitit_local", "slurm"),
    ("figure", "style"): ("screen", "lncs", "ieee", "neurips"),  # = gross.report.plots.STYLES (tests check)
}
# Keys whose value is "auto" or an integer.
_AUTO_OR_INT = {("executor", "gpus"), ("training", "networks_at_once")}
# Keys that must be >= 0 (all other ints/floats must be > 0 unless listed here).
_NON_NEGATIVE = {
    ("seed",), ("num_threads",), ("data", "split_seed"), ("ap", "seed"), ("ap", "repeat"),
    ("vgg16", "n_train"), ("vgg16", "n_val"), ("vgg16", "bfs_seeded_runs"), ("imagenet", "n_val"),
    ("imagenet", "workers"),
    ("four_layer", "btd_ridge"), ("vgg16", "btd_ridge"),
    ("executor", "gpus"), ("executor", "slurm_gpus_per_job"),
    ("own_network", "width_mult"), ("own_network", "n_train"), ("own_network", "n_val"), ("own_network", "btd_ridge"),
    ("own_network", "n_test"),
    ("four_layer", "augment_padding"), ("four_layer", "base_weight_decay"), ("four_layer", "finetune_weight_decay"),
    ("vgg16", "augment_padding"), ("vgg16", "base_weight_decay"), ("vgg16", "finetune_weight_decay"),
    ("pareto", "n_val"), ("pareto", "bfs_seeded_runs"),
    ("latency", "n_fit"),
}


#: ``[imagenet]`` keys that change where and how fast Table 4 runs, never its numbers
#: (:data:`gross.pipeline.table4.MACHINE_KEYS`: not part of Table 4's work folder identity).
IMAGENET_MACHINE_KEYS = ("nproc", "workers", "pin_memory", "persistent_workers", "eval_batch_size",
                         "checkpoint_every_steps")
#: ``[executor]`` keys (:func:`gross.pipeline.common.executor`): where jobs run, never what they compute.
EXECUTOR_KEYS = ("name", "workers", "threads", "gpus", "workers_per_gpu", "slurm_partition", "slurm_time_min",
                 "slurm_gpus_per_job", "slurm_array_parallelism")

#: Keys that do not change any number (where or how fast it runs): never part of an
#: artefact's fingerprint, never listed by :func:`reductions`.
NO_EFFECT = frozenset({"device", "num_threads", "data.path", "data.eval_batch_size", "imagenet.root", "figure.style",
                       "imagenet.vgg16_weights", "imagenet.resnet18_weights",  # weight locations
                       "training.networks_at_once"}  # K at once equals one at a time (tests/test_pipeline_finetune.py)
                      | {f"imagenet.{k}" for k in IMAGENET_MACHINE_KEYS}
                      | {f"executor.{k}" for k in EXECUTOR_KEYS})


def profiles() -> list[str]:
    """Names of the profiles found in ``configs/`` (sorted)."""
    return sorted(p.stem for p in paths.CONFIGS.glob("*.toml"))


def _read(profile: str) -> dict:
    valid = profiles()
    if not isinstance(profile, str) or profile not in valid:
        raise ValueError(f"unknown profile {profile!r}: valid profiles are {valid}")
    path = paths.CONFIGS / f"{profile}.toml"
    with open(path, "rb") as fh:
        try:
            return tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
            raise ValueError(f"{path} is not valid TOML: {exc}; fix that line") from None


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
    if key in _AUTO_OR_INT and isinstance(value, int) and not isinstance(value, bool):
        return value  # "auto" (the schema's value) or a number (of GPUs, of networks)
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
    if key in _AUTO_OR_INT and isinstance(value, str) and value != "auto":
        raise ValueError(f"config key {name!r} must be \"auto\" or an integer, got {value!r}")
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
    return parse_assignments(items, example="four_layer__repeats=2")


# ----------------------------------------------------------------------------- recording reads

_RECORDERS: contextvars.ContextVar[tuple] = contextvars.ContextVar("gross_config_recorders", default=())


@contextlib.contextmanager
def recording() -> Iterator[set]:
    """Collect the dotted keys (``"four_layer.btd_tol"``) of every :class:`Profile` read in the block.

    Recordings nest: a read is added to every active recording.
    """
    reads: set = set()
    token = _RECORDERS.set(_RECORDERS.get() + (reads,))
    try:
        yield reads
    finally:
        _RECORDERS.reset(token)


def _record(key: str) -> None:
    for reads in _RECORDERS.get():
        reads.add(key)


class Profile(Mapping):
    """A resolved, read-only profile: top-level keys and one nested :class:`Profile` per section.

    Reading a value (``cfg["four_layer"]["btd_tol"]``, ``.get``, ``.items()``) adds its
    dotted key to every active :func:`recording`. ``cfg["profile"]`` is the profile
    name (not a setting). :meth:`to_dict` returns a plain nested dict without recording.
    """

    def __init__(self, data: Mapping, prefix: str = "", _log: dict | None = None):
        self._prefix = prefix
        # Shared by a config and its sections: every key read, and those read since the last take_reads().
        self._log = {"all": set(), "pending": set()} if _log is None else _log
        self._data = {k: Profile(v, f"{prefix}{k}.", self._log) if isinstance(v, Mapping) else v
                      for k, v in data.items()}

    def __getitem__(self, key: str):
        if key not in self._data:
            raise KeyError(f"no config key {self._prefix + key!r}; this section has {sorted(self._data)}")
        value = self._data[key]
        if not isinstance(value, Profile) and self._prefix + key != "profile":
            _record(self._prefix + key)
            self._log["all"].add(self._prefix + key)
            self._log["pending"].add(self._prefix + key)
        return copy.copy(value) if isinstance(value, list) else value

    @property
    def keys_read(self) -> list[str]:
        """Every dotted key read from this config (or one of its sections) so far, sorted.

        A notebook ends with ``reductions(cfg, keys=cfg.keys_read)``: the settings it used
        that differ from the paper's.
        """
        return sorted(self._log["all"])

    def take_reads(self) -> set[str]:
        """The keys read since the previous call (or since loading), and start afresh.

        :func:`gross.pipeline.outputs.step` adds them to a step's reads, so that a step whose
        parts a notebook ran cell by cell before calling it records the settings those cells read.
        """
        pending = set(self._log["pending"])
        self._log["pending"].clear()
        return pending

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Profile({self.to_dict()!r})"

    def to_dict(self) -> dict:
        """A plain nested dict copy (reads nothing, so records nothing)."""
        return {k: v.to_dict() if isinstance(v, Profile) else copy.copy(v) for k, v in self._data.items()}


def lookup(cfg: Mapping, key: str):
    """The value of dotted ``key`` (``"four_layer.btd_tol"``) in ``cfg`` (recorded like any read).

    Raises
    ------
    KeyError
        A key that is not in ``cfg``.
    """
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


# ----------------------------------------------------------------------------- list-valued settings


@functools.lru_cache(maxsize=None)
def _valid_sizes(model: str) -> tuple[int, ...]:
    """Group sizes some decomposed layer of a paper network has (powers of two up to its widest layer)."""
    from gross.method.decomposition import default_group_sizes, planned_space
    from gross.models import four_layer_net, vgg16_cifar

    net = four_layer_net() if model == "four_layer" else vgg16_cifar()
    widest = max(max(s) for s in planned_space(net).values())
    return default_group_sizes(widest)


def _require_subset(name: str, values: Sequence, valid: Sequence, what: str) -> None:
    bad = [v for v in values if v not in valid]
    if bad:
        raise ValueError(f"config key {name!r} has invalid entries {bad}: {what} are {list(valid)}")


def _check_lists(cfg: Mapping) -> None:
    """Entries of list-valued (and size-valued) settings, checked against what they select from."""
    sizes4 = _valid_sizes("four_layer")
    _require_subset("four_layer.baselines", cfg["four_layer"]["baselines"], sizes4,
                    "the 4-layer network's group sizes")
    _require_subset("four_layer.depthwise", [cfg["four_layer"]["depthwise"]], sizes4,
                    "the 4-layer network's group sizes")
    _require_subset("vgg16.group_sizes", cfg["vgg16"]["group_sizes"], _valid_sizes("vgg16"),
                    "VGG-16's possible group sizes (powers of two up to 512)")
    _require_subset("vgg16.baselines", cfg["vgg16"]["baselines"], cfg["vgg16"]["group_sizes"],
                    "the sizes in vgg16.group_sizes")
    _require_subset("imagenet.models", cfg["imagenet"]["models"], ("vgg16", "resnet18"), "the ImageNet models")
    _require_subset("imagenet.baselines", cfg["imagenet"]["baselines"], cfg["imagenet"]["group_sizes"],
                    "the sizes in imagenet.group_sizes")
    _require_subset("pareto.baselines", cfg["pareto"]["baselines"], cfg["vgg16"]["group_sizes"],
                    "the sizes in vgg16.group_sizes")
    for key in ("four_layer.baselines", "vgg16.group_sizes", "vgg16.baselines", "imagenet.models",
                "ap.drops", "pareto.baselines"):
        values = lookup(cfg, key)
        if not values or len(set(values)) != len(values):
            raise ValueError(f"config key {key!r} must be a non-empty list without repeats, got {values!r}")
    ap, repeats = cfg["ap"], cfg["four_layer"]["repeats"]
    if ap["k"] > ap["n_configs"] or max(ap["drops"]) + ap["k"] > ap["n_configs"]:
        raise ValueError(f"ap.k = {ap['k']} with ap.drops = {ap['drops']} needs at least "
                         f"{max(ap['drops']) + ap['k']} configurations, but ap.n_configs = {ap['n_configs']}")
    if ap["repeat"] >= repeats:
        raise ValueError(f"ap.repeat = {ap['repeat']} must be below four_layer.repeats = {repeats} "
                         f"(valid: 0..{repeats - 1})")


def load(profile: str, *, base: str | None = None, **overrides) -> Profile:
    """Load a profile, merged over the paper's settings and validated.

    Parameters
    ----------
    profile : str
        ``"smoke"``, ``"cpu"`` or ``"paper"`` (any ``configs/<name>.toml``).
    base : str, optional
        A profile merged over the paper's settings *before* ``profile``
        (``paper <- base <- profile <- overrides``), e.g. ``load("cpu", base="paper_code")``:
        the authors' code's recipe, reduced by the cpu profile (its epochs, sizes and BTD
        limits win). The result is named ``"<profile>-<base>"`` (``cfg["profile"]``), so its
        files never mix with the plain profile's.
    **overrides
        Values replacing the profile's. A keyword names a key as

        * a top-level key: ``seed=1``, ``device="cpu"``;
        * ``section__key``: ``four_layer__repeats=2``;
        * ``section_key``: ``data_path="/data/cifar"``, ``imagenet_root=""``;
        * a key name that occurs in exactly one section: ``bfs_runs=4``.

    Returns
    -------
    Profile
        The resolved config: top-level keys plus one section per table of the TOML
        (``cfg["four_layer"]["gross_epochs"]``), and ``cfg["profile"]``.

    Raises
    ------
    ValueError
        Unknown profile (lists the valid ones), unknown or ambiguous key (lists the
        valid keys), a value of the wrong type or out of range, or a list with an entry
        that is not among the values it selects from (e.g. ``four_layer.baselines = [3]``).
    """
    schema = _read(REFERENCE_PROFILE)
    schema_flat = flatten(schema)
    cfg = copy.deepcopy(schema)
    if base is not None:
        _merge(cfg, _read(base), schema_flat, f"configs/{base}.toml")
    if profile != REFERENCE_PROFILE:
        _merge(cfg, _read(profile), schema_flat, f"configs/{profile}.toml")
    if base is not None:
        profile = f"{profile}-{base}"
    for name, value in overrides.items():
        key = _resolve_override(name, schema_flat)
        nested = value
        for part in reversed(key):
            nested = {part: nested}
        _merge(cfg, nested, schema_flat, "overrides")
    for key, value in flatten(cfg).items():
        _check_constraints(key, value)
    _check_lists(cfg)
    cfg["profile"] = profile
    return Profile(cfg)


def reductions(cfg: Mapping, keys=None, reference: str = REFERENCE_PROFILE) -> list[str]:
    """Human-readable differences between ``cfg`` and the paper profile.

    Computed by diffing against ``configs/paper.toml``, so it cannot go stale. Reads
    nothing through the recording (safe inside a step).

    Parameters
    ----------
    cfg : mapping
        A resolved config from :func:`load`.
    keys : iterable of str, optional
        Only these dotted keys (e.g. the keys a step read, see :func:`recording`).
    reference : str, default "paper"
        Profile to compare with.

    Returns
    -------
    list of str
        e.g. ``["four_layer.gross_epochs = 1 (paper: 150)", ...]``; empty for the paper profile.
    """
    ref = flatten(load(reference).to_dict())
    wanted = None if keys is None else set(keys)
    out = []
    for key, value in flatten(cfg.to_dict() if isinstance(cfg, Profile) else cfg).items():
        name = _dotted(key)
        if key == ("profile",) or name in NO_EFFECT or (wanted is not None and name not in wanted):
            continue
        if key in ref and ref[key] != value:
            out.append(f"{name} = {value!r} (paper: {ref[key]!r})")
    return out


#: Settings where the paper's text (or, where it is silent, our default) and the authors' code
#: disagree (docs/differences.md); :func:`gross.pipeline.common.recipe` reads them.
RECIPE_KEYS = tuple(f"{model}.{key}" for model in ("four_layer", "vgg16")
                    for key in ("augment_padding", "base_weight_decay", "finetune_weight_decay"))
#: Recipe names of :func:`recipe_name` and the profile holding each one's values (first match wins).
RECIPE_PROFILES = {"paper text": REFERENCE_PROFILE, "authors' code": "paper_code"}


def recipe_name(cfg: Mapping, keys=None) -> str | None:
    """Which training recipe ``cfg`` uses: ``"paper text"``, ``"authors' code"`` or ``"mixed"``.

    Compares the :data:`RECIPE_KEYS` among ``keys`` (every one when ``None``) with the
    profiles of :data:`RECIPE_PROFILES`; a recipe matches when every one of them has its value
    (the first match wins where both agree, e.g. the 4-layer base weight decay). ``None`` when
    none of ``keys`` is a recipe key (a step that trains nothing). Reads nothing through the
    recording.
    """
    wanted = [k for k in RECIPE_KEYS if keys is None or k in set(keys)]
    if not wanted:
        return None
    values = flatten(cfg.to_dict() if isinstance(cfg, Profile) else cfg)
    for name, profile in RECIPE_PROFILES.items():
        ref = flatten(load(profile).to_dict())
        if all(values[tuple(k.split("."))] == ref[tuple(k.split("."))] for k in wanted):
            return name
    return "mixed"


# ----------------------------------------------------------------------------- notebooks

_INJECTED_MARK = "# Parameters"  # first line of the cell papermill injects (tag ``injected-parameters``)


def _assigned_names(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def check_notebook_parameters(history: Sequence[str], passed: Sequence[str] = ()) -> list[str]:
    """Check the parameters a notebook received against those its ``parameters`` cell declares.

    Parameters
    ----------
    history : sequence of str
        The sources of the cells run so far, in order (IPython's ``In``): the
        ``parameters`` cell (annotated assignments) and, under papermill, the injected
        cell starting with ``# Parameters``.
    passed : sequence of str
        The parameters the notebook hands to :func:`load` / uses as notebook settings;
        every declared parameter must be among them.

    Returns
    -------
    list of str
        The declared parameter names (empty when no parameters cell has run).

    Raises
    ------
    ValueError
        A parameter injected by papermill that the parameters cell does not declare
        (names it and the valid ones), or a declared parameter the notebook does not pass on.
    """
    declared, injected = [], []
    for source in history:
        source = source or ""
        if source.lstrip().startswith(_INJECTED_MARK):
            injected = _assigned_names(source)
        elif not declared and source.strip():
            tree = ast.parse(source) if _assigned_names(source) else None
            if tree is not None and all(isinstance(n, ast.AnnAssign) for n in tree.body):
                declared = _assigned_names(source)
    unknown = [n for n in injected if n not in declared]
    if unknown:
        raise ValueError(f"unknown notebook parameter(s) {unknown}: this notebook's parameters are {declared}")
    unused = [n for n in declared if n not in set(passed) | {"profile"}]
    if declared and unused:
        raise ValueError(f"notebook parameter(s) {unused} are declared but not passed to gross.runs.config; "
                         f"pass every parameter of {declared}")
    return declared


def load_notebook(history: Sequence[str], profile: str, local: Mapping | None = None, **overrides) -> Profile:
    """:func:`load` for a notebook's configuration cell, after :func:`check_notebook_parameters`.

    Parameters
    ----------
    history : sequence of str
        IPython's ``In`` (the cells run so far).
    profile : str
        The notebook's ``profile`` parameter.
    local : mapping, optional
        Parameters of the notebook itself that are not config keys (e.g. the sizes of
        notebook 00's examples); checked as declared, returned as ``cfg.notebook_parameters``.
    **overrides
        The notebook's config parameters, passed to :func:`load`; ``None`` means the
        profile's value (a knob left at ``None`` in the parameters cell changes nothing).

    Examples
    --------
    In a notebook, right after the ``parameters`` cell::

        cfg = gross.runs.config.load_notebook(In, profile, seed=seed, device=device)
    """
    local = dict(local or {})
    check_notebook_parameters(history, list(overrides) + list(local))
    cfg = load(profile, **{name: value for name, value in overrides.items() if value is not None})
    cfg.notebook_parameters = local
    return cfg
