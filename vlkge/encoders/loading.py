"""What the encoders share when they load weights: local weight paths, a tokenizer sanity check,
quiet transformers loading, and the weights hash every feature store records."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from vlkge.errors import ConfigError


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


def weights_error(message: str, hint: str) -> ConfigError:
    """The error of weights that could not be loaded (``encode.weights``)."""
    return ConfigError(message, key="encode.weights", hint=hint)


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
