"""One way to turn a device name (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into a torch device, and
the host allocator's settings for training on the CPU."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

import torch

from vlkge.errors import ConfigError

log = logging.getLogger(__name__)

#: glibc's mallopt parameters, and the values training on the CPU sets them to
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: blocks up to this size come from the heap, not from a fresh mapping (glibc's largest allowed)
MMAP_THRESHOLD = 32 * 2**20
#: free memory the heap keeps, rather than giving back to the system, up to this
TRIM_THRESHOLD = 2**30


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


def keep_freed_host_memory() -> bool:
    """Have glibc's allocator keep freed blocks of up to :data:`MMAP_THRESHOLD` for reuse (True
    when it was set; False where there is no glibc, as on macOS, Windows or musl).

    A training step on the CPU allocates and frees the same large tensors each time (WN9-IMG: a
    [6,555, 768] gradient, 20 MB). Under glibc's defaults whether those are mapped afresh each
    step depends on the heap's layout: of seven runs of the same VL steps, two touched 5,400 and
    8,800 new pages a step (page faults, each a zeroed page), the others none; with these settings
    none of seven did. The heap then keeps up to :data:`TRIM_THRESHOLD` of freed memory for the
    rest of the process.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return False
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    done = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and done
    log.debug("allocator keeps freed blocks up to %d bytes: %s", MMAP_THRESHOLD, done)
    return done
