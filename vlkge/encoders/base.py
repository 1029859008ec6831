"""The encoder interface every feature encoder implements, and what they share.

An encoder turns images and texts into fixed-size float vectors. The encode job
(:mod:`vlkge.encoding`) only talks to this interface:

- ``image_transform``: PIL image (RGB) → FloatTensor [3, H, W]; runs in DataLoader workers.
- ``encode_images(pixels)``: FloatTensor [B, 3, H, W] → FloatTensor [B, d_image] (float32, on CPU,
  not normalised; the job normalises).
- ``encode_texts(texts)``: list of B strings → FloatTensor [B, d_text] (float32, on CPU).
- ``info``: what the feature store records about the encoder (ids, weights hash, dims).
"""

from __future__ import annotations

import contextlib
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vlkge.errors import ConfigError

IMAGE = "image"
TEXT = "text"

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


def resolve_device(device: str) -> torch.device:
    """``auto`` → the first GPU when present, else CPU; ``cpu``/``cuda``/``cuda:N`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(
            f"unknown device {device!r}", key="encode.device", hint="auto, cpu or cuda[:N]"
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "cuda requested but no GPU is visible", key="encode.device", hint="use --device cpu"
        )
    return resolved


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


def state_dict_sha256(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict: names, dtypes, shapes and raw bytes, in name order.

    The same weights give the same hash whatever file format or download they came from.
    """
    digest = hashlib.sha256()
    state = module.state_dict()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_tokenizer(tokenize: Callable[[list[str]], Any], *, what: str) -> None:
    """Refuse a tokenizer that cannot tell words apart (e.g. an empty vocabulary offline)."""
    probes = ["a photo of a cat", "a painting of a trumpet"]
    ids = tokenize(probes)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    rows = [torch.as_tensor(row).tolist() for row in ids]
    if rows[0] == rows[1] or len(set(rows[0])) < 4:
        raise ConfigError(
            f"the {what} tokenizer maps different sentences to the same tokens",
            hint="its vocabulary did not load (offline?); point --weights at a complete local copy",
        )


def local_path(weights: str | None, *, key: str = "encode.weights") -> Path | None:
    """``weights`` as an existing local path, ``None`` when unset; ConfigError when missing."""
    if weights is None or weights == "":
        return None
    path = Path(weights).expanduser()
    if not path.exists():
        raise ConfigError("weights path does not exist", path=path, key=key)
    return path


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' weight-loading progress bars and info logs while a model loads."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if was_enabled:
            hf_logging.enable_progress_bar()


class Encoder(ABC):
    """Base class: device, precision and the common contract (see the module docstring).

    Subclasses build their model(s) in ``__init__`` after calling ``super().__init__`` and set
    ``self.image_transform`` when they have an image side.
    """

    #: registry name, set by subclasses
    name: str = ""
    #: the modalities an encoder reads, in order
    modalities: tuple[str, ...] = (IMAGE, TEXT)

    def __init__(self, *, device: str = "auto", precision: str = "auto") -> None:
        self.device = resolve_device(device)
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.image_transform: Callable[[Any], torch.Tensor] | None = None

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

    @property
    def precision_name(self) -> str:
        return {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[self.autocast_dtype]
