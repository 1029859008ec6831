"""The interaction base class: a score of (head, relation, tail) representations written once, as
a query and a kernel, from which every score form follows.

Shapes: ``d`` is ``model.dim``; entities are ``[..., entity_width]`` and relations
``[..., relation_width]`` (TransE/DistMult: ``d`` and ``d``; ComplEx/RotatE entities ``2d`` laid
out ``[real | imaginary]``). A tail query ``q = tail_query(h, r)`` (or a head query
``q = head_query(r, t)``) is compared with a candidate entity ``e`` by the kernel — ``dot`` ⟨q, e⟩
or the negative distance ``l2`` / ``l1`` γ − ‖q − e‖. From that one definition come

- ``score(h, r, t)``: element-wise, broadcasting → ``[...]``;
- ``score_tails(h, r, candidates)`` / ``score_heads(r, t, candidates)``: 1-vs-all, ``[B, *]``
  against ``[N, *]`` → ``[B, N]``, one matrix product (``l1`` uses ``cdist``);
- the sampled form used in training (:meth:`Interaction.compare_sampled`), with no [B, K, w]
  gather (except for ``l1`` and for entities transformed by :meth:`Interaction.entity_view`).

An interaction is an ``nn.Module`` that holds no entity or relation rows, only parameters of its
own when it has any (TuckER's core tensor). Queries take the rows as the representations give them
(fused, for multimodal models); a candidate entity is compared through :meth:`Interaction.entity_view`
(the identity, or TransE's L2 normalisation in the forward pass), so every score form sees the
same vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlkge.gathered import l1_all, sampled_dot, sampled_l1

_EPS = 1e-12


def halves(x: Tensor) -> tuple[Tensor, Tensor]:
    """``[real | imaginary]`` → (real, imaginary)."""
    return x.chunk(2, dim=-1)


class Interaction(nn.Module):
    """Base class: subclasses set the kernel and widths and define the two queries.

    ``dim``: ``model.dim``; ``p_norm``: TransE's distance norm; ``margin``: γ of the distance
    kernels (scores are γ − distance; ranks do not depend on it).
    """

    kernel: str = "dot"  # dot | l2 | l1
    entity_factor: int = 1  # entity width = entity_factor · d
    relation_factor: int = 1  # relation width = relation_factor · d

    def __init__(self, dim: int, p_norm: int = 2, margin: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.p_norm = p_norm
        self.margin = margin

    @property
    def entity_width(self) -> int:
        return self.entity_factor * self.dim

    @property
    def relation_width(self) -> int:
        return self.relation_factor * self.dim

    @property
    def views_entities(self) -> bool:
        """True when :meth:`entity_view` is not the identity (the sampled form then gathers rows)."""
        return False

    @property
    def linear_in_candidates(self) -> bool:
        """True when a candidate's score is a dot product of a query with its row as stored, so a
        linear representation may score candidates without computing their rows."""
        return self.kernel == "dot" and not self.views_entities

    def entity_view(self, x: Tensor) -> Tensor:
        """An entity vector [..., w] as the score reads it: the identity here; a backbone may
        transform it in the forward pass (TransE's ``normalize_entities``), differentiably."""
        return x

    def init_relations(self, weight: Tensor) -> None:
        """Initialise a relation table in place (default: Xavier uniform)."""
        torch.nn.init.xavier_uniform_(weight)

    def tail_query(self, h: Tensor, r: Tensor) -> Tensor:
        raise NotImplementedError

    def head_query(self, r: Tensor, t: Tensor) -> Tensor:
        raise NotImplementedError

    # -- kernels ---------------------------------------------------------------------------
    def compare(self, q: Tensor, e: Tensor) -> Tensor:
        """Element-wise kernel: [..., w] × [..., w] → [...]."""
        if self.kernel == "dot":
            return (q * e).sum(-1)
        ord_ = 2 if self.kernel == "l2" else 1
        return self.margin - torch.linalg.vector_norm(q - e, ord=ord_, dim=-1)

    def compare_all(self, q: Tensor, candidates: Tensor) -> Tensor:
        """1-vs-all kernel: q [B, w], candidates [N, w] → [B, N]."""
        if self.kernel == "dot":
            return q @ candidates.T
        if self.kernel == "l2":
            # ‖q‖² + ‖e‖² − 2⟨q, e⟩: one fused matrix product, in place when no gradient is needed
            sq = torch.addmm((candidates * candidates).sum(-1).unsqueeze(0), q, candidates.T, alpha=-2.0)
            sq = sq.add_((q * q).sum(-1, keepdim=True))
            if torch.is_grad_enabled() and sq.requires_grad:
                return self.margin - sq.clamp_min(_EPS).sqrt()
            return sq.clamp_min_(_EPS).sqrt_().neg_().add_(self.margin)
        return self.margin - l1_all(q, candidates)

    def compare_sampled(
        self, queries: Tensor, table: Tensor, index: Tensor, side: Tensor, sparse: bool = False
    ) -> Tensor:
        """queries [B, S, w], table [N, w], index and side [B, K]
        → kernel(queries[b, side[b, k]], table[index[b, k]]) [B, K].

        ``sparse``: the table's gradient is a sparse tensor over the touched rows (a leaf table
        updated row-wise by the optimiser)."""
        if self.kernel == "l1" or self.views_entities:
            # the touched rows once, transformed by the entity view; pairs index into them
            rows, index = torch.unique(index, return_inverse=True)
            table, sparse = self.entity_view(F.embedding(rows, table, sparse=sparse)), False
        if self.kernel == "l1":
            return self.margin - sampled_l1(queries, table, index, side)
        dots = sampled_dot(queries, table, index, side, sparse)
        if self.kernel == "dot":
            return dots
        q_sq = (queries * queries).sum(-1).gather(1, side)  # [B, K]
        # squared norms of the touched rows only: no [N, w] work or gradient per batch
        rows, where = torch.unique(index, return_inverse=True)
        touched = F.embedding(rows, table, sparse=sparse)
        t_sq = (touched * touched).sum(-1)[where]  # [B, K]
        return self.margin - (q_sq + t_sq - 2.0 * dots).clamp_min(_EPS).sqrt()

    # -- the three score forms -------------------------------------------------------------
    def score(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return self.compare(self.tail_query(h, r), self.entity_view(t))

    def score_tails(self, h: Tensor, r: Tensor, candidates: Tensor) -> Tensor:
        return self.compare_all(self.tail_query(h, r), self.entity_view(candidates))

    def score_heads(self, r: Tensor, t: Tensor, candidates: Tensor) -> Tensor:
        return self.compare_all(self.head_query(r, t), self.entity_view(candidates))

    def flops_per_score(self) -> int:
        """Floating-point operations of comparing one query with one candidate (roofline)."""
        return 2 * self.entity_width
