"""CLIP encoders through open_clip: ``clip`` (any architecture, pretrained tag or local file)
and ``tiny-clip`` (a small random configuration for tests, same code path).

Both map images and texts into one shared space of ``embed_dim`` dims.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vlkge.encoders.base import Encoder, EncoderInfo
from vlkge.encoders.loading import check_tokenizer, local_path, state_dict_sha256, weights_error
from vlkge.errors import ConfigError
from vlkge.modalities import IMAGE, TEXT

CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")

TINY_ARCH = "vlkge-tiny-clip"
#: A ViT CLIP small enough for CPU tests: 2 layers per tower, 64-d, 32 px images, 32 tokens,
#: the real BPE vocabulary (open_clip ships it), output 32-d.
TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError:
        raise ConfigError(
            "the clip encoders need open_clip",
            key="encode.model",
            hint="pip install open_clip_torch",
        ) from None
    return open_clip


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """Silence open_clip's INFO/WARNING logging while a model is built (we report ourselves)."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _checkpoint_in_dir(directory: Path) -> Path:
    found = sorted(p for p in directory.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
    if len(found) != 1:
        raise ConfigError(
            f"expected exactly one checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}) in the weights "
            f"directory, found {len(found)}",
            path=directory,
            key="encode.weights",
            hint="pass the checkpoint file itself",
        )
    return found[0]


class ClipEncoder(Encoder):
    """open_clip model: ``arch`` by name (default ViT-B-16), weights from a pretrained tag
    (default ``openai``, downloaded on first use) or a local ``weights`` path.

    ``weights`` may be a checkpoint file, a directory holding one checkpoint, or a directory
    with ``open_clip_config.json`` (open_clip's ``local-dir:`` layout, architecture included).
    """

    name = "clip"
    default_arch = "ViT-B-16"
    default_pretrained: str | None = "openai"

    def load(self, *, arch: str | None, pretrained: str | None, weights: str | None) -> None:
        open_clip = _open_clip()
        self.arch = arch or self.default_arch
        path = local_path(weights)
        model_name, tag = self.arch, pretrained or self.default_pretrained
        if path is not None:
            if path.is_dir() and (path / "open_clip_config.json").is_file():
                model_name, tag = f"local-dir:{path}", None
                self.arch = arch or f"local-dir:{path.name}"
            else:
                tag = str(path if path.is_file() else _checkpoint_in_dir(path))
        self.weights_id = str(path) if path is not None else (tag or "random")
        known = open_clip.list_models()
        if not model_name.startswith("local-dir:") and model_name not in known:
            raise ConfigError(
                f"unknown open_clip architecture {model_name!r}",
                key="encode.arch",
                hint=f"e.g. {', '.join(known[:8])} … (open_clip.list_models())",
            )
        try:
            with _quiet_open_clip(), self._init_context():
                model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=tag)
        except RuntimeError as exc:
            hint = "without internet, download the checkpoint elsewhere and pass --weights FILE"
            raise weights_error(
                f"could not load open_clip {model_name} weights {tag!r}: {exc}", hint
            ) from None
        self.model = model.eval().to(self.device)
        self.image_transform = preprocess
        with _quiet_open_clip():
            self.tokenizer = open_clip.get_tokenizer(model_name)
        check_tokenizer(self.tokenizer, what="open_clip")

    def _init_context(self) -> contextlib.AbstractContextManager[Any]:
        """Context for model construction (random init is seeded by ``tiny-clip``)."""
        return contextlib.nullcontext()

    @classmethod
    def options_from_record(cls, record: dict[str, Any]) -> dict[str, Any]:
        """The architecture from ``details``, and the weights: a local path when it still exists,
        else the pretrained tag (nothing for random weights)."""
        options: dict[str, Any] = {}
        arch = (record.get("details") or {}).get("open_clip_model")
        if arch and not arch.startswith("local-dir:"):
            options["arch"] = arch
        weights = record.get("weights_id") or ""
        if weights and Path(weights).exists():
            options["weights"] = weights
        elif weights and not weights.startswith("random"):
            options["pretrained"] = weights
        return options

    def trainable_modules(self, layers: int) -> list[nn.Module | nn.Parameter]:
        """The final layer norms and output projections, and the last ``layers`` residual blocks
        of each tower."""
        model = self.model
        found: list[nn.Module | nn.Parameter] = [model.visual.ln_post, model.ln_final]
        if layers:
            found += list(model.visual.transformer.resblocks[-layers:]) + list(
                model.transformer.resblocks[-layers:]
            )
        for owner, name in ((model.visual, "proj"), (model, "text_projection")):
            projection = getattr(owner, name, None)  # parameters, not modules, in open_clip
            if isinstance(projection, nn.Parameter):
                found.append(projection)
        return found

    def tune_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels.to(self.device)).float()

    def tune_texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts).to(self.device)).float()

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """FloatTensor [B, 3, H, W] → [B, embed_dim] float32."""
        with self.inference():
            return self.model.encode_image(self.to_device(pixels)).float().cpu()

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """B strings → [B, embed_dim] float32 (truncated to the context length)."""
        tokens = self.tokenizer(texts)
        with self.inference():
            return self.model.encode_text(tokens.to(self.device)).float().cpu()

    @cached_property
    def info(self) -> EncoderInfo:
        with torch.inference_mode():
            size = self.model.visual.image_size  # int or (h, w)
            h, w = (size, size) if isinstance(size, int) else size
            probe_image = torch.zeros(1, 3, h, w)
            dims = {
                IMAGE: self.encode_images(probe_image).shape[1],
                TEXT: self.encode_texts(["x"]).shape[1],
            }
        return EncoderInfo(
            name=self.name,
            encoder_id=f"open_clip:{self.arch}",
            weights_id=self.weights_id,
            weights_sha256=state_dict_sha256(self.model),
            dims=dims,
            shared_space=True,
            details={"open_clip_model": self.arch},
        )


class TinyClipEncoder(ClipEncoder):
    """A tiny random open_clip ViT (see ``TINY_CONFIG``), seeded, for fast tests of the mechanics.

    Same code path as ``clip``; ``weights`` loads a saved tiny checkpoint instead of the seed.
    """

    name = "tiny-clip"
    default_arch = TINY_ARCH
    default_pretrained = None
    _config_dir: Path | None = None

    def __init__(self, *, seed: int = 0, **options: Any) -> None:
        self.seed = seed
        self._register_config()
        options.pop("arch", None)
        super().__init__(arch=TINY_ARCH, **options)
        if self.weights_id == "random":
            self.weights_id = f"random(seed={seed})"

    @classmethod
    def options_from_record(cls, record: dict[str, Any]) -> dict[str, Any]:
        weights = record.get("weights_id") or ""
        return {"weights": weights} if weights and Path(weights).exists() else {}

    @classmethod
    def _register_config(cls) -> None:
        open_clip = _open_clip()
        if TINY_ARCH in open_clip.list_models():
            return
        cls._config_dir = Path(tempfile.mkdtemp(prefix="vlkge-tiny-clip-"))
        atexit.register(shutil.rmtree, cls._config_dir, True)
        (cls._config_dir / f"{TINY_ARCH}.json").write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
        open_clip.add_model_config(cls._config_dir)

    def _init_context(self) -> contextlib.AbstractContextManager[Any]:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.random.fork_rng(devices=[]))
        torch.manual_seed(self.seed)
        return stack
