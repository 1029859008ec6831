"""Parameters: packaged defaults ← the project's ``params.yaml`` ← command-line overrides.

Every key must exist in ``defaults.yaml``; values keep the default's type (``null`` defaults take
any value; a key with a non-null default refuses ``null``). Errors name the file and the dotted key.
"""

from __future__ import annotations

import copy
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vlkge.errors import ConfigError

Params = dict[str, Any]


def default_params() -> Params:
    """The packaged defaults (``vlkge/defaults.yaml``)."""
    text = resources.files("vlkge").joinpath("defaults.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


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


def load_params(path: str | Path | None = None, overrides: Params | None = None) -> Params:
    """Defaults, then ``path`` (default ``./params.yaml`` when it exists), then ``overrides``.

    ``overrides`` is nested like the YAML; ``None`` values in it are ignored (an unset flag).
    """
    params = default_params()
    candidate = Path(path) if path is not None else Path("params.yaml")
    if path is not None and not candidate.is_file():
        raise ConfigError(
            "params file not found", path=candidate, hint="check the --params path (default: ./params.yaml)"
        )
    if candidate.is_file():
        try:
            text = candidate.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read the params file ({exc})", path=candidate, hint="save it as UTF-8 YAML text"
            ) from None
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError(
                f"not valid YAML ({getattr(exc, 'problem', exc)})",
                path=candidate,
                line=None if mark is None else mark.line + 1,
                hint="fix the YAML at that line (indentation, brackets, quotes)",
            ) from None
        if not isinstance(loaded, dict):
            raise ConfigError(
                "expected a mapping at the top level",
                path=candidate,
                hint="write `section:` lines with indented `key: value` lines, as in vlkge/defaults.yaml",
            )
        params = merge(params, loaded, source=str(candidate))
    if overrides:
        params = merge(params, _drop_none(overrides), source="command line")
    check_values(params)
    return params


def _drop_none(tree: Params) -> Params:
    out: Params = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if value:
                out[key] = value
        elif value is not None:
            out[key] = value
    return out


def check_values(params: Params) -> None:
    """Refuse impossible values (dim 0, no negatives, unknown choices) with the key named."""
    rules: list[tuple[str, Any, str]] = [
        ("model.dim", lambda v: v > 0, "must be positive"),
        ("train.epochs", lambda v: v >= 0, "must be >= 0"),
        ("train.batch_size", lambda v: v > 0, "must be positive"),
        ("train.negatives", lambda v: v > 0, "must be positive"),
        ("train.lr", lambda v: v > 0, "must be positive"),
        ("train.regularization", lambda v: v >= 0, "must be >= 0"),
        ("train.eval_every", lambda v: v > 0, "must be positive"),
        ("train.patience", lambda v: v > 0, "must be positive"),
        ("evaluate.batch_size", lambda v: v > 0, "must be positive"),
        ("train.sampler", lambda v: v in ("uniform", "bernoulli"), "use uniform or bernoulli"),
        ("train.optimizer", lambda v: v in ("adagrad", "adam"), "use adagrad or adam"),
        (
            "train.device",
            lambda v: v in ("auto", "cpu", "cuda") or v.startswith("cuda:"),
            "use auto, cpu or cuda[:N]",
        ),
        (
            "clean.unseen",
            lambda v: v in (None, "drop", "fail", "keep", "inductive"),
            "use drop, fail, keep or inductive",
        ),
        ("evaluate.protocol", lambda v: v in ("correct", "paper"), "use correct or paper"),
        ("evaluate.directions", lambda v: v in (None, "both", "tail"), "use both or tail"),
        (
            "evaluate.candidate_pools",
            lambda v: v in (None, "all", "per_relation"),
            "use all or per_relation",
        ),
        ("model.p_norm", lambda v: v in (1, 2), "use 1 or 2"),
    ]
    for dotted, value in _leaves(params):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"impossible value {value!r}", key=dotted, hint="use a finite number")
    for dotted, ok, what in rules:
        value = get(params, dotted)
        if not ok(value):
            raise ConfigError(f"impossible value {value!r}", key=dotted, hint=what)
    from vlkge.interactions import INTERACTIONS

    INTERACTIONS.get(params["model"]["backbone"], key="model.backbone")


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
