"""Image loading: one file decoded fully and preprocessed, or the reason it could not be.

Used wherever images are read: the encode job (in DataLoader workers), prediction from a query
image, the zero-shot baseline and fine-tuning.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


def load_image(
    path: Path, transform: Callable[[Any], torch.Tensor]
) -> tuple[torch.Tensor | None, str | None]:
    """Decode one image fully and preprocess it: ``(pixels [3, H, W], None)`` or
    ``(None, reason)`` for a missing, empty, truncated, non-image or otherwise bad file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                image.load()  # decode everything now: truncated data fails here
                rgb = _to_8bit(image).convert("RGB")
            if rgb.width < 1 or rgb.height < 1:
                return None, "empty image"
            pixels = transform(rgb)
    except FileNotFoundError:
        return None, "file not found"
    except IsADirectoryError:
        return None, "a directory, not a file"
    except UnidentifiedImageError:
        reason = "empty file" if path.is_file() and path.stat().st_size == 0 else "not an image"
        return None, reason
    except Image.DecompressionBombError as exc:
        return None, f"too large: {exc}"
    except Exception as exc:  # any decoder failure is one skipped file
        return None, f"unreadable: {type(exc).__name__}: {exc}"
    if not torch.isfinite(pixels).all():
        return None, "non-finite pixels after preprocessing"
    return pixels, None


def _to_8bit(image: Any) -> Any:
    """16- and 32-bit integer images (``I;16*``, ``I``) scaled to 8-bit grey; PIL's own
    ``convert("RGB")`` clips them at 255, which turns most 16-bit photos white."""
    if not image.mode.startswith("I"):
        return image
    from PIL import Image

    array = np.asarray(image)
    bits = 16 if image.mode.startswith("I;16") or int(array.max(initial=0)) < 65536 else 32
    scaled = (array.astype(np.float64) / float(2**bits - 1) * 255.0).round().clip(0, 255)
    return Image.fromarray(scaled.astype(np.uint8))
