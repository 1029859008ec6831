"""KGE interaction functions: stateless scores of (head, relation, tail) representations.

Shapes: ``d`` is ``model.dim``. TransE and DistMult hold entities and relations as ``[..., d]``.
ComplEx and RotatE hold entities as ``[..., 2d]`` laid out ``[real | imaginary]``; ComplEx
relations are ``[..., 2d]`` too, RotatE relations ``[..., d]`` phases.

Every interaction is written as a *query* and a *kernel*: a tail query ``q = tail_query(h, r)``
(or a head query ``q = head_query(r, t)``) is compared with a candidate entity ``e`` by the kernel
— ``dot`` ⟨q, e⟩ or the negative distance ``l2`` / ``l1`` −‖q − e‖. From that one definition come

- ``score(h, r, t)``: element-wise, broadcasting → ``[...]``;
- ``score_tails(h, r, candidates)`` / ``score_heads(r, t, candidates)``: 1-vs-all, ``[B, *]``
  against ``[N, *]`` → ``[B, N]``, one matrix product (``l1`` uses ``cdist``);
- the sampled form used in training (:meth:`compare_sampled`), with no [B, K, w] gather.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from vlkge.gathered import sampled_dot
from vlkge.registry import Registry

_EPS = 1e-12


def _halves(x: Tensor) -> tuple[Tensor, Tensor]:
    return x.chunk(2, dim=-1)


class Interaction:
    """Base class: subclasses set widths and the kernel and define the two queries."""

    name: str = ""
    kernel: str = "dot"  # dot | l2 | l1
    entity_factor: int = 1  # entity width = entity_factor · d
    relation_factor: int = 1  # relation width = relation_factor · d

    def __init__(self, p_norm: int = 2, margin: float = 0.0) -> None:
        self.p_norm = p_norm
        self.margin = margin

    def entity_width(self, dim: int) -> int:
        return self.entity_factor * dim

    def relation_width(self, dim: int) -> int:
        return self.relation_factor * dim

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
        return self.margin - torch.cdist(q, candidates, p=1.0)

    def compare_sampled(
        self, queries: Tensor, table: Tensor, index: Tensor, side: Tensor, sparse: bool = False
    ) -> Tensor:
        """queries [B, S, w], table [N, w], index and side [B, K]
        → kernel(queries[b, side[b, k]], table[index[b, k]]) [B, K].

        ``sparse``: the table's gradient is a sparse tensor over the touched rows (a leaf table
        updated row-wise by the optimiser)."""
        if self.kernel == "l1":
            chosen = queries.gather(1, side.unsqueeze(-1).expand(*side.shape, queries.shape[-1]))
            return self.compare(chosen, F.embedding(index, table, sparse=sparse))
        dots = sampled_dot(queries, table, index, side, sparse)
        if self.kernel == "dot":
            return dots
        q_sq = (queries * queries).sum(-1).gather(1, side)  # [B, K]
        # squared norms of the touched rows only: no [N, w] work or gradient per batch
        rows, where = torch.unique(index, return_inverse=True)
        t_sq = F.embedding(rows, table, sparse=sparse).pow(2).sum(-1)[where]  # [B, K]
        return self.margin - (q_sq + t_sq - 2.0 * dots).clamp_min(_EPS).sqrt()

    # -- the three score forms -------------------------------------------------------------
    def score(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return self.compare(self.tail_query(h, r), t)

    def score_tails(self, h: Tensor, r: Tensor, candidates: Tensor) -> Tensor:
        return self.compare_all(self.tail_query(h, r), candidates)

    def score_heads(self, r: Tensor, t: Tensor, candidates: Tensor) -> Tensor:
        return self.compare_all(self.head_query(r, t), candidates)

    def flops_per_score(self, dim: int) -> int:
        """Floating-point operations of comparing one query with one candidate (roofline)."""
        return 2 * self.entity_width(dim)


INTERACTIONS: Registry[type[Interaction]] = Registry("backbone")


@INTERACTIONS.register("transe")
class TransE(Interaction):
    """f(h, r, t) = -‖h + r - t‖_p (Bordes et al., 2013); p = ``model.p_norm``."""

    name = "transe"

    def __init__(self, p_norm: int = 2, margin: float = 0.0) -> None:
        super().__init__(p_norm, margin)
        self.kernel = "l2" if p_norm == 2 else "l1"

    def tail_query(self, h: Tensor, r: Tensor) -> Tensor:
        return h + r

    def head_query(self, r: Tensor, t: Tensor) -> Tensor:
        return t - r  # ‖h + r - t‖ = ‖h - (t - r)‖


@INTERACTIONS.register("distmult")
class DistMult(Interaction):
    """f(h, r, t) = Σ h ⊙ r ⊙ t (Yang et al., 2015)."""

    name = "distmult"

    def tail_query(self, h: Tensor, r: Tensor) -> Tensor:
        return h * r

    def head_query(self, r: Tensor, t: Tensor) -> Tensor:
        return r * t


@INTERACTIONS.register("complex")
class ComplEx(Interaction):
    """f(h, r, t) = Re⟨h, r, conj(t)⟩ (Trouillon et al., 2016)."""

    name = "complex"
    entity_factor = 2
    relation_factor = 2

    def tail_query(self, h: Tensor, r: Tensor) -> Tensor:
        hr, hi = _halves(h)
        rr, ri = _halves(r)
        return torch.cat([hr * rr - hi * ri, hr * ri + hi * rr], dim=-1)

    def head_query(self, r: Tensor, t: Tensor) -> Tensor:
        rr, ri = _halves(r)
        tr, ti = _halves(t)
        return torch.cat([rr * tr + ri * ti, rr * ti - ri * tr], dim=-1)


@INTERACTIONS.register("rotate")
class RotatE(Interaction):
    """f(h, r, t) = -‖h ∘ e^{iθ_r} - t‖₂ over complex vectors (Sun et al., 2019).

    The relation is a phase vector θ [d]. The distance is the Euclidean norm of the complex
    difference, which has an exact matrix-product 1-vs-all form.
    """

    name = "rotate"
    kernel = "l2"
    entity_factor = 2
    relation_factor = 1

    def init_relations(self, weight: Tensor) -> None:
        with torch.no_grad():
            weight.uniform_(-math.pi, math.pi)

    @staticmethod
    def _rotate(x: Tensor, phase: Tensor) -> Tensor:
        xr, xi = _halves(x)
        c, s = torch.cos(phase), torch.sin(phase)
        return torch.cat([xr * c - xi * s, xr * s + xi * c], dim=-1)

    def tail_query(self, h: Tensor, r: Tensor) -> Tensor:
        return self._rotate(h, r)

    def head_query(self, r: Tensor, t: Tensor) -> Tensor:
        return self._rotate(t, -r)  # rotations keep norms: ‖h∘r - t‖ = ‖h - t∘conj(r)‖


def make_interaction(name: str, p_norm: int = 2, margin: float = 0.0) -> Interaction:
    """Resolve a backbone name (``model.backbone``) to an interaction instance."""
    return INTERACTIONS.get(name, key="model.backbone")(p_norm=p_norm, margin=margin)
