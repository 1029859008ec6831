"""Every pluggable component by name, from the catalogue ``vlkge/components.yaml``: backbones,
fusions, initialisers, optimisers, negative samplers and feature encoders.

Each is listed with its import path and one line of help and imported only when first used, so
the command line shows the choices (and the configuration checks them) without importing torch.
A new component is its module plus one line in the catalogue; its own options reach it through
``model.backbone_options`` / ``model.fusion_options`` (:meth:`vlkge.registry.Registry.build`).
"""

from __future__ import annotations

from importlib import resources

import yaml

from vlkge.registry import Registry


def _catalogue() -> dict[str, Registry]:
    text = resources.files("vlkge").joinpath("components.yaml").read_text(encoding="utf-8")
    registries = {}
    for kind, spec in yaml.safe_load(text).items():
        entries = {name: (target, help) for name, (target, help) in spec["entries"].items()}
        registries[kind] = Registry(
            kind, key=spec["key"], options_key=spec.get("options_key"), entries=entries
        )
    return registries


_REGISTRIES = _catalogue()
BACKBONES: Registry = _REGISTRIES["backbone"]
FUSIONS: Registry = _REGISTRIES["fusion"]
INITIALISERS: Registry = _REGISTRIES["initialiser"]
OPTIMIZERS: Registry = _REGISTRIES["optimizer"]
SAMPLERS: Registry = _REGISTRIES["sampler"]
ENCODERS: Registry = _REGISTRIES["encoder"]

#: parameter → the registry its value must name (checked when the parameters are read)
CHOICES: dict[str, Registry] = {r.key: r for r in _REGISTRIES.values() if r.key}
