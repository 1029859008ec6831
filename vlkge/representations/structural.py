"""The structural representation: a trainable table [count, width] (entities or relations)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlkge.components import INITIALISERS
from vlkge.gathered import rows_at
from vlkge.representations.base import EntityRepresentation


def uniform_unit(weight: Tensor) -> Tensor:
    """U(−1, 1) in place (``model.init: uniform``)."""
    return nn.init.uniform_(weight, -1.0, 1.0)


def xavier_embedding(weight: Tensor) -> Tensor:
    """Xavier with the row width as both fans, as for a linear layer fed one-hot rows:
    U(±√(6/width)) (``model.init: xavier_embedding``, PyKEEN's TransE default). Rows start
    ~√(N / width) times larger than with ``xavier_uniform`` over the whole [N, width] table."""
    bound = (6.0 / weight.shape[-1]) ** 0.5
    return nn.init.uniform_(weight, -bound, bound)


class StructuralEmbedding(EntityRepresentation):
    """A trainable table [count, width], scored in place by the model (no per-batch copy)."""

    def __init__(self, count: int, width: int, init: str = "xavier_uniform") -> None:
        super().__init__()
        self.num_entities = count
        self.sparse = False
        self.weight = nn.Parameter(torch.empty(count, width))
        INITIALISERS.get(init)(self.weight.data)

    def forward(self, ids: Tensor) -> Tensor:
        """ids [*] → representations [*, width]."""
        if self.sparse:
            return F.embedding(ids, self.weight, sparse=True)
        return rows_at(self.weight, ids)

    def all(self) -> Tensor:
        """[count, width]: the table itself."""
        return self.weight
