"""Where each entity sits within a subset of entities: the map every "only these" path needs
(a relation's candidate pool, the entities a step projects, the queries' heads)."""

from __future__ import annotations

import torch
from torch import Tensor


def positions_among(subset: Tensor, n: int) -> Tensor:
    """subset [P] distinct ids in [0, n) → [n] int64 on subset's device: each id's position in
    ``subset``, −1 for the ids not in it."""
    out = torch.full((n,), -1, dtype=torch.long, device=subset.device)
    out[subset] = torch.arange(len(subset), device=subset.device)
    return out
