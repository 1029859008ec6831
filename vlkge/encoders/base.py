"""The encoder interface every feature encoder implements, and what they share.

An encoder turns images and texts into fixed-size float vectors. The encode job
(:mod:`vlkge.encoding`), prediction, the zero-shot baseline and fine-tuning only talk to this
interface:

- ``image_transform``: PIL image (RGB) → FloatTensor [3, H, W]; runs in DataLoader workers.
- ``encode_images(pixels)``: FloatTensor [B, 3, H, W] → FloatTensor [B, d_image] (float32, on CPU,
  not normalised; the job normalises).
- ``encode_texts(texts)``: list of B strings → FloatTensor [B, d_text] (float32, on CPU).
- ``info``: what the feature store records about the encoder (ids, weights hash, dims);
  ``options_from_record(record)`` reads the constructor options back from that record.
- fine-tuning: ``trainable_modules(layers)`` (what to unfreeze), ``tune_images(pixels)`` and
  ``tune_texts(texts)`` (the same vectors with gradients, on the encoder's device).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from vlkge.devices import resolve_device
from vlkge.errors import ConfigError
from vlkge.modalities import IMAGE, TEXT

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class EncoderInfo:
    """Identity of an encoder as written into every feature-store manifest.

    ``dims`` maps a modality (``image``/``text``) to its vector size; ``shared_space`` says
    whether image and text vectors are comparable (CLIP, BLIP) or not (``lite``).
    """

    name: str
    encoder_id: str
    weights_id: str
    weights_sha256: str
    dims: dict[str, int]
    shared_space: bool
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.encoder_id,
            "weights_id": self.weights_id,
            "weights_sha256": self.weights_sha256,
            "dims": dict(self.dims),
            "shared_space": self.shared_space,
            **({"details": self.details} if self.details else {}),
        }


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: ``None`` means plain float32.

    ``auto`` is bf16 on GPUs that support it, fp16 on other GPUs, float32 on CPU.
    """
    if precision not in PRECISIONS:
        raise ConfigError(
            f"unknown precision {precision!r}", key="encode.precision", hint=", ".join(PRECISIONS)
        )
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if precision == "fp16" else torch.bfloat16


class Encoder(ABC):
    """Base class: device, precision and the common contract (see the module docstring).

    Every encoder is built as ``Encoder(arch=..., pretrained=..., weights=..., device=...,
    precision=...)`` (``None``: its own default); subclasses load their model(s) in :meth:`load`
    and set ``self.image_transform`` when they have an image side.
    """

    #: registry name, set by subclasses
    name: str = ""
    #: the modalities an encoder reads, in order
    modalities: tuple[str, ...] = (IMAGE, TEXT)

    def __init__(
        self,
        *,
        arch: str | None = None,
        pretrained: str | None = None,
        weights: str | None = None,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        self.device = resolve_device(device, key="encode.device")
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.image_transform: Callable[[Any], torch.Tensor] | None = None
        self.load(arch=arch, pretrained=pretrained, weights=weights)

    @abstractmethod
    def load(self, *, arch: str | None, pretrained: str | None, weights: str | None) -> None:
        """Load the model(s) (``None`` options: the encoder's defaults)."""

    @classmethod
    def options_from_record(cls, record: dict[str, Any]) -> dict[str, Any]:
        """``arch``/``pretrained``/``weights`` that rebuild the encoder a feature store records
        (``manifest["encoder"]``, :meth:`EncoderInfo.as_dict`); {} keeps the defaults."""
        return {}

    @property
    @abstractmethod
    def info(self) -> EncoderInfo:
        """Identity, weights and dims (computed once, cached by subclasses)."""

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """FloatTensor [B, 3, H, W] → float32 FloatTensor [B, d_image] on CPU."""
        raise NotImplementedError(f"encoder {self.name!r} has no image side")

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """B strings → float32 FloatTensor [B, d_text] on CPU."""
        raise NotImplementedError(f"encoder {self.name!r} has no text side")

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """``torch.inference_mode`` plus autocast on GPU when a reduced precision is chosen."""
        with torch.inference_mode():
            if self.autocast_dtype is None:
                yield
            else:
                with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype):
                    yield

    def to_device(self, pixels: torch.Tensor) -> torch.Tensor:
        """Move a (pinned) batch to the encoder's device without blocking."""
        return pixels.to(self.device, non_blocking=True)

    # -- fine-tuning --------------------------------------------------------------------------
    def trainable_modules(self, layers: int) -> list[torch.nn.Module | torch.nn.Parameter]:
        """What fine-tuning unfreezes: the output projections and the last ``layers`` blocks per
        tower (``train.finetune_layers``). ConfigError for encoders that cannot be fine-tuned."""
        raise ConfigError(
            f"fine-tuning is not implemented for the {self.name!r} encoder",
            key="train.frozen",
            hint="fine-tune one of: clip, tiny-clip; or train with --frozen",
        )

    def tune_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """FloatTensor [B, 3, H, W] → [B, d_image] float32 with gradients, on the encoder's device."""
        raise NotImplementedError(f"encoder {self.name!r} cannot be fine-tuned")

    def tune_texts(self, texts: list[str]) -> torch.Tensor:
        """B strings → [B, d_text] float32 with gradients, on the encoder's device."""
        raise NotImplementedError(f"encoder {self.name!r} cannot be fine-tuned")

    @property
    def precision_name(self) -> str:
        return {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[self.autocast_dtype]
