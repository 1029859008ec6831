"""``blip``: BLIP's image and text projections (the image-text contrastive heads) through
transformers' ``BlipForImageTextRetrieval``. One shared space of ``image_text_hidden_size``
dims (256 for the released checkpoints).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from vlkge.encoders.base import Encoder, EncoderInfo
from vlkge.encoders.loading import (
    check_tokenizer,
    local_path,
    quiet_transformers,
    state_dict_sha256,
    weights_error,
)
from vlkge.errors import ConfigError
from vlkge.modalities import IMAGE, TEXT

DEFAULT_BLIP = "Salesforce/blip-itm-base-coco"


class BlipEncoder(Encoder):
    """BLIP ITC features: ``vision_proj(ViT [CLS])`` and ``text_proj(BERT [CLS])``.

    ``arch`` is a Hugging Face model id (default ``Salesforce/blip-itm-base-coco``, downloaded on
    first use); ``weights`` a local directory saved with ``save_pretrained`` (model + processor).
    """

    name = "blip"

    def load(self, *, arch: str | None, pretrained: str | None, weights: str | None) -> None:
        try:
            from torchvision import transforms as T
            from transformers import AutoProcessor, BlipForImageTextRetrieval
        except ImportError:
            raise ConfigError(
                "blip needs transformers and torchvision",
                key="encode.model",
                hint="pip install transformers torchvision",
            ) from None
        if pretrained is not None:
            raise ConfigError(
                "blip takes a model id (--arch) or a directory (--weights)", key="encode.pretrained"
            )
        path = local_path(weights)
        if path is not None and not path.is_dir():
            raise ConfigError(
                "blip weights must be a directory (save_pretrained layout)",
                path=path,
                key="encode.weights",
            )
        self.source = str(path) if path is not None else (arch or DEFAULT_BLIP)
        self.model_id = "local" if path is not None else self.source
        try:
            with quiet_transformers():
                processor = AutoProcessor.from_pretrained(self.source)
                model = BlipForImageTextRetrieval.from_pretrained(self.source)
        except OSError as exc:
            hint = "offline: save model + processor with save_pretrained, pass --weights DIR"
            raise weights_error(f"could not load BLIP from {self.source}: {exc}", hint) from None
        self.model = model.eval().to(self.device)
        self.tokenizer = processor.tokenizer
        check_tokenizer(lambda texts: self.tokenizer(texts, padding=True), what="BLIP")
        config = model.config
        self.max_tokens = min(
            int(getattr(self.tokenizer, "model_max_length", 512) or 512),
            int(config.text_config.max_position_embeddings),
        )
        ip = processor.image_processor
        size = ip.size
        hw = (size["height"], size["width"]) if "height" in size else (size["shortest_edge"],) * 2
        self.image_transform = T.Compose(
            [
                T.Resize(hw, interpolation=T.InterpolationMode.BICUBIC),
                T.ToTensor(),
                T.Normalize(list(ip.image_mean), list(ip.image_std)),
            ]
        )
        self.image_size = hw

    @classmethod
    def options_from_record(cls, record: dict[str, Any]) -> dict[str, Any]:
        """A local model directory when it still exists, else the model id."""
        source = record.get("weights_id") or ""
        if not source:
            return {}
        return {"weights": source} if Path(source).is_dir() else {"arch": source}

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """FloatTensor [B, 3, H, W] → [B, image_text_hidden_size] float32."""
        with self.inference():
            states = self.model.vision_model(pixel_values=self.to_device(pixels)).last_hidden_state
            return self.model.vision_proj(states[:, 0, :]).float().cpu()

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """B strings → [B, image_text_hidden_size] float32."""
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        with self.inference():
            states = self.model.text_encoder(
                input_ids=batch["input_ids"].to(self.device),
                attention_mask=batch["attention_mask"].to(self.device),
            ).last_hidden_state
            return self.model.text_proj(states[:, 0, :]).float().cpu()

    @cached_property
    def info(self) -> EncoderInfo:
        dim = int(self.model.config.image_text_hidden_size)
        return EncoderInfo(
            name=self.name,
            encoder_id=f"transformers:BlipForImageTextRetrieval:{self.model_id}",
            weights_id=self.source,
            weights_sha256=state_dict_sha256(self.model),
            dims={IMAGE: dim, TEXT: dim},
            shared_space=True,
            details=self._details(),
        )

    def _details(self) -> dict[str, Any]:
        return {"image_size": list(self.image_size), "max_tokens": self.max_tokens}
