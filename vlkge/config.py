"""Parameters: packaged defaults ← the project's ``params.yaml`` ← command-line overrides, parsed
once into frozen dataclasses, one per section of ``defaults.yaml``.

Every key must exist in ``defaults.yaml``; values keep the default's type (``null`` defaults take
any value; a key with a non-null default refuses ``null``); a value naming a component (backbone,
fusion, optimiser …) must be one of :mod:`vlkge.components`. Errors name the file and the dotted
key. A component's own options (``model.backbone_options``, ``model.fusion_options``) pass through
as mappings: the component checks them when it is built.

Dataset adapters take the plain nested dict (:meth:`Config.to_params`); so do run records.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from vlkge.components import CHOICES
from vlkge.errors import ConfigError
from vlkge.modalities import STRUCTURAL, parse_modalities

Params = dict[str, Any]


def default_params() -> Params:
    """The packaged defaults (``vlkge/defaults.yaml``) as a plain nested dict."""
    text = resources.files("vlkge").joinpath("defaults.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


# ----------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class CrawlConfig:
    source: str | None
    images: str | None


@dataclass(frozen=True)
class CleanConfig:
    unseen: str | None  # null: the dataset adapter's own choice
    allow_unlisted_entities: bool
    text_template: str
    wikiart: Mapping[str, Any]


@dataclass(frozen=True)
class ModelConfig:
    backbone: str
    backbone_options: Mapping[str, Any]
    dim: int
    init: str
    p_norm: int
    margin: float
    modalities: tuple[str, ...]
    fusion: str
    fusion_options: Mapping[str, Any]
    imaginary: str
    features: str | None
    similarity: float
    typing: bool
    alone_similarity: float
    mentions: float
    votes: float
    vote_neighbours: int
    without_structure: str

    @property
    def multimodal(self) -> bool:
        """True when the model reads features (any modality besides ``structural``)."""
        return self.modalities != (STRUCTURAL,)


@dataclass(frozen=True)
class TrainConfig:
    seeds: int
    epochs: int
    batch_size: int
    negatives: int
    sampler: str
    filtered: bool
    optimizer: str
    lr: float
    regularization: float
    eval_every: int
    patience: int
    min_delta: float
    valid_protocol: str
    device: str
    threads: int
    projection_lr: float
    shared_optimizer: str | None
    prior_lr: float
    prior_loss: float
    structure_dropout: float
    frozen: bool
    finetune_lr: float
    finetune_layers: int


@dataclass(frozen=True)
class EvaluateConfig:
    split: str
    protocol: str
    batch_size: int
    directions: str | None
    candidate_pools: str | None
    missing: str


@dataclass(frozen=True)
class EncodeConfig:
    model: str
    arch: str | None
    pretrained: str | None
    weights: str | None
    store: str | None
    batch_size: int
    workers: int
    device: str
    precision: str
    text_template: str
    relation_template: str
    pool: str
    normalize: bool
    shard_rows: int

    @property
    def store_name(self) -> str:
        """The store directory under ``features/``: ``encode.store``, else the model name."""
        return self.store or self.model

    def encoder_options(self) -> dict[str, Any]:
        """What :func:`vlkge.encoders.build_encoder` takes besides the name."""
        return {k: getattr(self, k) for k in ("arch", "pretrained", "weights", "device", "precision")}


@dataclass(frozen=True)
class Config:
    """All parameters, typed: ``config.train.lr``. Build with :func:`load_config`."""

    dataset: str
    seed: int
    preset: str | None
    crawl: CrawlConfig
    clean: CleanConfig
    model: ModelConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    encode: EncodeConfig

    @classmethod
    def from_params(cls, params: Params) -> Config:
        """The typed view of a merged and checked params dict (see :func:`load_params`)."""
        return _build(cls, params)

    def to_params(self) -> Params:
        """The plain nested dict (the layout of ``defaults.yaml``): what dataset adapters take and
        what a run records."""
        return _plain(self)

    def updated(self, overrides: Params, *, source: str = "command line") -> Config:
        """A copy with ``overrides`` (nested like the YAML; ``None`` values ignored) merged in and
        checked."""
        params = _layer(self.to_params(), _drop_none(overrides), source=source)
        check_values(params)
        return Config.from_params(params)


def _build(cls: type, values: Mapping[str, Any]) -> Any:
    """``cls(**values)`` with nested sections built, lists as tuples and mappings read-only."""
    out = {}
    for f in fields(cls):
        value = values[f.name]
        if isinstance(f.type, str) and f.type.endswith("Config"):
            value = _build(_SECTIONS[f.type], value)
        elif f.name == "modalities":
            value = parse_modalities(value)
        elif isinstance(value, Mapping):
            value = MappingProxyType(copy.deepcopy(dict(value)))
        out[f.name] = value
    return cls(**out)


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_SECTIONS = {
    c.__name__: c for c in (CrawlConfig, CleanConfig, ModelConfig, TrainConfig, EvaluateConfig, EncodeConfig)
}


# ----------------------------------------------------------------------------- reading


def _type_ok(default: Any, value: Any) -> bool:
    if default is None:
        return True
    if value is None:  # an empty value for a key that needs one
        return False
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))


def merge(base: Params, update: Params, *, source: str, prefix: str = "") -> Params:
    """Return ``base`` updated with ``update``; refuse unknown keys and mistyped values."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            known = ", ".join(sorted(base))
            raise ConfigError("unknown key", path=source, key=dotted, hint=f"known keys here: {known}")
        default = base[key]
        if isinstance(default, dict) and default:
            if value is None:  # a section whose keys are all commented out
                continue
            if not isinstance(value, dict):
                raise ConfigError(
                    "expected a mapping",
                    path=source,
                    key=dotted,
                    hint=f"write {key}'s keys indented under it (known: {', '.join(sorted(default))})",
                )
            out[key] = merge(default, value, source=source, prefix=f"{dotted}.")
        elif not _type_ok(default, value):
            raise ConfigError(
                f"expected {type(default).__name__}, got {type(value).__name__} ({value!r})",
                path=source,
                key=dotted,
                hint=f"write a {type(default).__name__} like the default {json.dumps(default)} (no quotes)",
            )
        else:
            out[key] = float(value) if isinstance(default, float) and value is not None else value
    return out


def _read_yaml(path: Path) -> Params:
    """The mapping in a params file; ConfigError naming the file (and line) otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the params file ({exc})", path=path, hint="save it as UTF-8 YAML text"
        ) from None
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"not valid YAML ({getattr(exc, 'problem', exc)})",
            path=path,
            line=None if mark is None else mark.line + 1,
            hint="fix the YAML at that line (indentation, brackets, quotes)",
        ) from None
    if not isinstance(loaded, dict):
        raise ConfigError(
            "expected a mapping at the top level",
            path=path,
            hint="write `section:` lines with indented `key: value` lines, as in vlkge/defaults.yaml",
        )
    return loaded


def load_params(
    path: str | Path | None = None, overrides: Params | None = None, *, project: bool = True
) -> Params:
    """Defaults, then ``path`` (default ``./params.yaml`` when it exists; with ``project`` false,
    none unless ``path`` names one), then ``overrides``, merged and checked, as the plain nested
    dict.

    ``overrides`` is nested like the YAML; ``None`` values in it are ignored (an unset flag).
    """
    params = default_params()
    candidate = Path(path) if path is not None else Path("params.yaml")
    if path is None and not project:
        candidate = None
    if path is not None and not candidate.is_file():
        raise ConfigError(
            "params file not found", path=candidate, hint="check the --params path (default: ./params.yaml)"
        )
    if candidate is not None and candidate.is_file():
        params = merge(params, _read_yaml(candidate), source=str(candidate))
    params = _layer(params, _drop_none(overrides or {}), source="command line", fresh=True)
    check_values(params)
    return params


# ----------------------------------------------------------------------------- presets

#: named recipes shipped with the package (``vlkge/presets/<name>.yaml``)
PRESET_DIR = Path(str(resources.files("vlkge").joinpath("presets")))


def preset_names() -> list[str]:
    """The shipped presets' file stems (``paper-transe`` …)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str, backbone: str) -> Path:
    """The file of preset ``name``: a YAML path, else ``presets/<name>.yaml``, else
    ``presets/<name>-<backbone>.yaml`` (``paper`` with backbone ``transe`` → ``paper-transe``)."""
    if name.endswith((".yaml", ".yml")):
        if not Path(name).is_file():
            raise ConfigError("preset file not found", path=name, key="preset", hint="check the path")
        return Path(name)
    for stem in (name, f"{name}-{backbone}"):
        if (PRESET_DIR / f"{stem}.yaml").is_file():
            return PRESET_DIR / f"{stem}.yaml"
    raise ConfigError(
        f"no preset {name!r} for the backbone {backbone!r}",
        key="preset",
        hint=f"shipped presets: {', '.join(preset_names())} (or a YAML file)",
    )


def _layer(params: Params, overrides: Params, *, source: str, fresh: bool = False) -> Params:
    """``params`` ← the preset the overrides name (``fresh``: else the one ``params`` name, as read
    from a params file) ← the overrides: a preset sits above the params file and below the flags.
    Its backbone is the overrides' when they set one. A preset already applied (a config being
    updated) is not applied again."""
    name = overrides.get("preset") or (params.get("preset") if fresh else None)
    if name:
        backbone = overrides.get("model", {}).get("backbone") or params["model"]["backbone"]
        path = preset_path(str(name), str(backbone))
        recipe = _read_yaml(path)
        if "preset" in recipe:
            raise ConfigError("a preset cannot name another preset", path=path, key="preset")
        params = merge(params, recipe, source=str(path))
        params["preset"] = str(name)
    return merge(params, overrides, source=source) if overrides else params


def load_config(
    path: str | Path | None = None, overrides: Params | None = None, *, project: bool = True
) -> Config:
    """:func:`load_params`, typed."""
    return Config.from_params(load_params(path, overrides, project=project))


#: keys that change a model's parameters, with the value they had before they existed: a run
#: recorded without one was trained that way (its default today would not fit its weights)
BEFORE_KEY = {("model", "mentions"): 0.0, ("model", "votes"): 0.0}


def config_from_record(params: Params, *, source: str) -> Config:
    """The config of a run from the params it recorded (keys added since then take their
    defaults, or for those in :data:`BEFORE_KEY` the value they had before they existed)."""
    params = copy.deepcopy(dict(params))
    for (section, key), before in BEFORE_KEY.items():
        part = params.get(section)
        if isinstance(part, dict) and key not in part:
            part[key] = before
    merged = merge(default_params(), params, source=source)
    check_values(merged)
    return Config.from_params(merged)


def _drop_none(tree: Params) -> Params:
    out: Params = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            value = _drop_none(value)
            if value:
                out[key] = value
        elif value is not None:
            out[key] = value
    return out


# ----------------------------------------------------------------------------- values


def _device_ok(v: str) -> bool:
    return v in ("auto", "cpu", "cuda") or v.startswith("cuda:")


#: (dotted key, test, what to write instead)
RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("model.dim", lambda v: v > 0, "must be positive"),
    ("train.epochs", lambda v: v >= 0, "must be >= 0"),
    ("train.batch_size", lambda v: v > 0, "must be positive"),
    ("train.negatives", lambda v: v > 0, "must be positive"),
    ("train.lr", lambda v: v > 0, "must be positive"),
    ("train.regularization", lambda v: v >= 0, "must be >= 0"),
    ("train.eval_every", lambda v: v > 0, "must be positive"),
    ("train.seeds", lambda v: v >= 1, "must be >= 1"),
    ("train.patience", lambda v: v >= 0, "must be >= 0 (0: no early stopping)"),
    ("train.valid_protocol", lambda v: v in ("correct", "paper"), "use correct or paper"),
    ("evaluate.batch_size", lambda v: v > 0, "must be positive"),
    ("train.device", _device_ok, "use auto, cpu or cuda[:N]"),
    (
        "clean.unseen",
        lambda v: v in (None, "drop", "fail", "keep", "inductive"),
        "use drop, fail, keep, inductive",
    ),
    ("evaluate.protocol", lambda v: v in ("correct", "paper"), "use correct or paper"),
    ("evaluate.directions", lambda v: v in (None, "both", "tail"), "use both or tail"),
    ("evaluate.candidate_pools", lambda v: v in (None, "all", "per_relation"), "use all or per_relation"),
    ("evaluate.missing", lambda v: v in ("worst", "drop", "error"), "use worst, drop or error"),
    ("model.p_norm", lambda v: v in (1, 2), "use 1 or 2"),
    ("model.imaginary", lambda v: v in ("projection", "gated", "fused"), "use projection, gated or fused"),
    ("model.similarity", lambda v: v >= 0, "must be >= 0 (0: no feature prior)"),
    ("model.alone_similarity", lambda v: v >= 0, "must be >= 0"),
    ("model.mentions", lambda v: v >= 0, "must be >= 0 (0: no text mentions)"),
    ("model.votes", lambda v: v >= 0, "must be >= 0 (0: no neighbour votes)"),
    ("model.vote_neighbours", lambda v: isinstance(v, int) and v >= 1, "must be a whole number >= 1"),
    ("train.prior_lr", lambda v: v > 0, "must be positive"),
    ("train.prior_loss", lambda v: v >= 0, "must be 0 or more"),
    ("model.without_structure", lambda v: v in ("features", "neutral"), "use features or neutral"),
]


def check_values(params: Params) -> None:
    """Refuse impossible values (dim 0, no negatives, unknown choices) with the key named."""
    for dotted, value in _leaves(params):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"impossible value {value!r}", key=dotted, hint="use a finite number")
    for dotted, ok, what in RULES:
        value = get(params, dotted)
        if not ok(value):
            raise ConfigError(f"impossible value {value!r}", key=dotted, hint=what)
    for dotted, registry in CHOICES.items():
        value = get(params, dotted)
        if value not in registry:
            raise ConfigError(f"unknown {registry.kind} {value!r}", key=dotted, hint=registry.hint())
    shared = params["train"]["shared_optimizer"]
    if shared is not None and shared not in CHOICES["train.optimizer"]:
        registry = CHOICES["train.optimizer"]
        raise ConfigError(
            f"unknown {registry.kind} {shared!r}", key="train.shared_optimizer", hint=registry.hint()
        )
    parse_modalities(params["model"]["modalities"])


def _leaves(tree: Params, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every non-mapping value."""
    out: list[tuple[str, Any]] = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out += _leaves(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def get(params: Params, dotted: str) -> Any:
    """``get(params, "train.lr")`` → ``params["train"]["lr"]``."""
    node: Any = params
    for part in dotted.split("."):
        node = node[part]
    return node
