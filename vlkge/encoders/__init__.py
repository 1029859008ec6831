"""Feature encoders behind one registry: ``build_encoder("clip", weights=..., device=...)``.

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

from vlkge.encoders.base import IMAGE, TEXT, Encoder, EncoderInfo
from vlkge.encoders.blip import BlipEncoder
from vlkge.encoders.clip import ClipEncoder, TinyClipEncoder
from vlkge.encoders.lite import LiteEncoder
from vlkge.registry import Registry

ENCODERS: Registry[type[Encoder]] = Registry("encoder")
for _cls in (ClipEncoder, BlipEncoder, LiteEncoder, TinyClipEncoder):
    ENCODERS.register(_cls.name)(_cls)


def build_encoder(name: str, **options: Any) -> Encoder:
    """Build the encoder registered as ``name``.

    ``options`` are its keyword arguments (``arch``, ``pretrained``, ``weights``, ``device``,
    ``precision``); ``None`` values are dropped so each encoder's own default applies.
    """
    cls = ENCODERS.get(name, key="encode.model")
    return cls(**{k: v for k, v in options.items() if v is not None})


__all__ = ["ENCODERS", "IMAGE", "TEXT", "Encoder", "EncoderInfo", "build_encoder"]
