"""One way to turn a device name (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into a torch device."""

from __future__ import annotations

import torch

from vlkge.errors import ConfigError


def resolve_device(name: str, *, key: str = "train.device") -> torch.device:
    """``auto`` → the first GPU when present, else the CPU; others as given. ConfigError (naming
    ``key``) for an unknown name or a GPU that is not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}", key=key, hint="use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA was asked for but no GPU is visible", key=key, hint="use cpu or auto")
    return device
