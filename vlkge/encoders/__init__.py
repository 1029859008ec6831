"""Feature encoders, listed in :data:`vlkge.components.ENCODERS`; :func:`build_encoder` is the one
way to build one.

| name        | image                         | text                 | shared space |
|-------------|-------------------------------|----------------------|--------------|
| `clip`      | open_clip (ViT-B-16 / openai) | same model           | yes          |
| `blip`      | BLIP ViT + vision_proj        | BLIP BERT + text_proj| yes          |
| `lite`      | EfficientNet-Lite (1280-d)    | all-MiniLM-L6-v2 (384)| no          |
| `tiny-clip` | random tiny open_clip (tests) | same model           | yes (random) |

Heavy libraries (open_clip, transformers) are imported when an encoder is built, not here.
"""

from __future__ import annotations

from typing import Any

from vlkge.components import ENCODERS
from vlkge.encoders.base import Encoder, EncoderInfo


def build_encoder(name: str, **options: Any) -> Encoder:
    """Build the encoder registered as ``name`` (``encode.model``).

    ``options`` are its keyword arguments (``arch``, ``pretrained``, ``weights``, ``device``,
    ``precision``); ``None`` values are dropped so each encoder's own default applies.
    """
    return ENCODERS.get(name)(**{k: v for k, v in options.items() if v is not None})


def encoder_options_from_record(name: str, record: dict[str, Any]) -> dict[str, Any]:
    """The options that rebuild the encoder ``name`` a feature store records (its manifest's
    ``encoder``)."""
    return ENCODERS.get(name).options_from_record(record)


__all__ = ["Encoder", "EncoderInfo", "build_encoder", "encoder_options_from_record"]
