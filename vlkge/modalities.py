"""The names of modalities: what a model's entity representation is made of, and the feature
store's modality directories they read."""

from __future__ import annotations

from collections.abc import Iterable

from vlkge.errors import ConfigError

#: the trainable table row of an entity seen in training
STRUCTURAL = "structural"
#: model modality → the feature store's modality directory
FEATURE_MODALITIES = {"visual": "image", "textual": "text"}
#: model modalities in their canonical order
MODALITIES = (STRUCTURAL, *FEATURE_MODALITIES)

#: the feature store's modality directories
IMAGE = "image"
TEXT = "text"
RELATION_TEXT = "relation_text"
STORE_MODALITIES = (IMAGE, TEXT, RELATION_TEXT)


def parse_modalities(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``model.modalities`` (a list or a comma-separated string) → the canonical ordered tuple."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    names = [str(x).strip().lower() for x in items if str(x).strip()]
    unknown = sorted(set(names) - set(MODALITIES))
    if unknown or not names:
        raise ConfigError(
            f"modalities {names or '[]'}: {'unknown ' + ', '.join(unknown) if unknown else 'none given'}",
            key="model.modalities",
            hint=f"any non-empty subset of {', '.join(MODALITIES)}",
        )
    return tuple(m for m in MODALITIES if m in names)
