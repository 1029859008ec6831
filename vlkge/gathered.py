"""Scores of a batch of queries against sampled candidate rows, without materialising them.

Training with K negatives per positive needs ⟨q_{b,s}, e_{idx[b,k]}⟩ for B·K pairs (s = the side
query of pair (b, k)). Gathering the rows first builds a [B, K, w] tensor (157 MB at the paper's
settings) whose allocation and backward scatter dominate an epoch. Here the pairs are a sparse
[B·S, N] pattern instead:

- forward: one sampled dense-dense product (SDDMM, ``torch.sparse.sampled_addmm``) over the
  pattern in CSR form with the entities as its rows (pairs sorted by entity: each table row is read
  once for all of its pairs): each pair's dot product, nothing gathered;
- backward: two weighted bag sums (``embedding_bag`` with per-sample weights): the query gradient
  sums the pair gradients times table rows per query row, the table gradient sums them times
  query rows per entity (pairs sorted by entity). No [B, K, w] tensor, no atomic scatter.

The table gradient is dense [N, w] by default, or a sparse COO tensor over the touched rows when
``sparse=True`` (row-wise optimiser updates on large graphs).

The L1 distance ‖q − e‖₁ has no product form; :func:`sampled_l1` computes it in chunks of a few
queries whose [c, K, w] differences stay in cache, and recomputes them in the backward pass
instead of keeping a [B, K, w] tensor (TransE with ``p_norm: 1``); :func:`l1_all` is its
1-vs-all form for evaluation, in blocks of queries × candidates that stay in cache.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


class _LastOrder:
    """The last pair order computed, reused while the pairs are the same (a step scores its sampled
    pairs against several tables: the structural rows, each feature table, the similarities)."""

    def __init__(self, compute: Callable[..., tuple[Tensor, Tensor]]) -> None:
        self.compute = compute
        #: (arguments, result) of the last call, replaced as one (threads may share it)
        self.last: tuple[tuple, tuple[Tensor, Tensor]] | None = None

    def __call__(self, *args: Tensor | int) -> tuple[Tensor, Tensor]:
        """``compute(*args)`` for tensors and ints ``args``, from the last call's when they are equal."""
        last = self.last
        if last is not None and _equal(args, last[0]):
            return last[1]
        value = self.compute(*args)
        # a copy of the key: the caller may write into its tensors later
        self.last = (tuple(a.clone() if isinstance(a, Tensor) else a for a in args), value)
        return value


def _equal(args: tuple, key: tuple) -> bool:
    """Whether two argument tuples hold equal ints and tensors of equal shape and values."""
    if len(args) != len(key):
        return False
    for a, b in zip(args, key, strict=True):
        if isinstance(a, Tensor):
            if not isinstance(b, Tensor) or a.shape != b.shape or a.device != b.device:
                return False
            if not torch.equal(a, b):
                return False
        elif a != b:
            return False
    return True


def _chosen_rows(b: int, n_side: int, side: Tensor) -> Tensor:
    """[B, K] rows of the flattened [B·S, w] queries that each pair compares."""
    return torch.arange(b, device=side.device).unsqueeze(1) * n_side + side


def _entity_order(index: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """The pairs of ``index`` [B, K] (flat position b·K + k) in entity order: (order [B·K] stable,
    CSR row offsets [N + 1] of each entity's run in it)."""
    cols = index.reshape(-1)
    order = torch.argsort(cols, stable=True)
    crow = torch.zeros(n + 1, dtype=torch.long, device=index.device)
    crow[1:] = torch.bincount(cols, minlength=n).cumsum(0)
    return order, crow


def _query_order(index: Tensor, side: Tensor, n_side: int) -> tuple[Tensor, Tensor]:
    """The pairs in query order, rows ``b·S + side``: (order [B, K] of the pairs within each row
    of ``index`` so that equal sides are contiguous, CSR row offsets [B·S + 1])."""
    b, k = index.shape
    if n_side == 1:
        within = torch.arange(k, device=index.device).expand(b, k)
        return within, torch.arange(0, b * k + 1, k, device=index.device)
    order = torch.sort(side, dim=1, stable=True).indices
    rows = _chosen_rows(b, n_side, side).reshape(-1)
    crow = torch.zeros(b * n_side + 1, dtype=torch.long, device=index.device)
    crow[1:] = torch.bincount(rows, minlength=b * n_side).cumsum(0)
    return order, crow


#: the order of a step's pairs, computed once for all the tables scored over them
_by_entity = _LastOrder(_entity_order)
_by_query = _LastOrder(_query_order)


class _SampledDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, queries: Tensor, table: Tensor, index: Tensor, side: Tensor, sparse: bool) -> Tensor:
        b, n_side, w = queries.shape
        flat = queries.reshape(b * n_side, w)
        rows = _chosen_rows(b, n_side, side).reshape(-1)  # [B·K]
        order, crow = _by_entity(index, table.shape[0])
        query_of = rows[order]  # the query row of each pair, in entity order
        with warnings.catch_warnings():  # "CSR support is in beta"
            warnings.simplefilter("ignore")
            pattern = torch.sparse_csr_tensor(
                crow,
                query_of,
                torch.zeros(query_of.numel(), dtype=queries.dtype, device=queries.device),
                (table.shape[0], b * n_side),
                check_invariants=False,
            )
        # entity-major: each table row is read once for all of its pairs (2.7× query-major here)
        values = torch.sparse.sampled_addmm(pattern, table, flat.T, beta=0.0).values()
        out = torch.empty_like(values).index_copy_(0, order, values).view(index.shape)
        ctx.save_for_backward(queries, table, index, side, order, crow, query_of)
        ctx.sparse = sparse
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        queries, table, index, side, order, crow, query_of = ctx.saved_tensors
        b, n_side, w = queries.shape
        grad_q = grad_t = None
        if ctx.needs_input_grad[0]:
            # query-major: a bag of table rows per query row
            within, offsets = _by_query(index, side, n_side)
            weights = grad.contiguous().gather(1, within).reshape(-1).to(table.dtype)
            cols = index.gather(1, within).reshape(-1)
            grad_q = F.embedding_bag(cols, table, offsets[:-1], mode="sum", per_sample_weights=weights)
            grad_q = grad_q.view(b, n_side, w)
        if ctx.needs_input_grad[1]:
            # entity-major: a bag of query rows per entity
            weights = grad.reshape(-1)[order]
            flat = queries.reshape(b * n_side, w)
            if ctx.sparse:
                counts = crow.diff()
                touched = counts.nonzero().squeeze(1)
                offsets = crow[touched]
                values = F.embedding_bag(query_of, flat, offsets, mode="sum", per_sample_weights=weights)
                grad_t = torch.sparse_coo_tensor(
                    touched.unsqueeze(0), values, table.shape, is_coalesced=True, check_invariants=False
                )
            else:
                grad_t = F.embedding_bag(query_of, flat, crow[:-1], mode="sum", per_sample_weights=weights)
        return grad_q, grad_t, None, None, None


def rows_at(table: Tensor, ids: Tensor) -> Tensor:
    """table [N, w] (or [N, ...]) at ids [*] → [*, w]: by ``index_select``, whose backward is an
    index_add (indexing's is a serial accumulating index_put, ~10× slower on CPU)."""
    return table.index_select(0, ids.reshape(-1)).view(*ids.shape, *table.shape[1:])


def dot_of_chosen_pairs(
    queries: Tensor, table: Tensor, index: Tensor, side: Tensor, chosen: Tensor
) -> Tensor:
    """out[b, k] = ⟨queries[b, side[b, k]], table[index[b, k]]⟩ where ``chosen`` [B, K] (bool),
    else 0: queries [B, S, w], table [N, w], index and side [B, K] → [B, K]. Only the chosen pairs
    are gathered (one row gather of the flattened queries, one of the table): a modality few
    entities have. ``index`` is read only where chosen. Differentiable in queries and table."""
    b, n_side, w = queries.shape
    at = chosen.nonzero(as_tuple=True)
    rows = queries.reshape(b * n_side, w).index_select(0, at[0] * n_side + side[at])
    found = torch.linalg.vecdot(rows, table.index_select(0, index[at]))  # [P]
    return torch.zeros(index.shape, dtype=queries.dtype, device=queries.device).index_put(at, found)


def sampled_dot(queries: Tensor, table: Tensor, index: Tensor, side: Tensor, sparse: bool = False) -> Tensor:
    """out[b, k] = ⟨queries[b, side[b, k]], table[index[b, k]]⟩.

    queries [B, S, w] (S query variants per row, e.g. head- and tail-side queries), table [N, w],
    index [B, K] int64, side [B, K] int64 in [0, S) → [B, K]. Differentiable in ``queries`` and
    ``table``; extra memory is O(B·K) indices plus the gradients themselves. ``sparse``: the
    table's gradient is a sparse COO tensor over the touched rows.
    """
    return _SampledDot.apply(queries, table, index, side, sparse)


#: floats of one chunk's [c, K, w] differences in :func:`sampled_l1` (4 MiB: cache-sized)
L1_CHUNK_FLOATS = 2**20


class _SampledL1(torch.autograd.Function):
    @staticmethod
    def forward(ctx, queries: Tensor, table: Tensor, index: Tensor, side: Tensor) -> Tensor:
        b, n_side, w = queries.shape
        flat, rows = queries.reshape(b * n_side, w), _chosen_rows(b, n_side, side)
        step = max(1, L1_CHUNK_FLOATS // max(1, index.shape[1] * w))
        out = queries.new_empty(index.shape)
        for s, diff in _pair_differences(flat, table, rows, index, step):
            torch.sum(diff.abs_(), dim=-1, out=out[s : s + step])
        ctx.save_for_backward(queries, table, index, rows)
        ctx.step = step
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        queries, table, index, rows = ctx.saved_tensors
        b, n_side, w = queries.shape
        flat = queries.reshape(b * n_side, w)
        grad_q, grad_t = torch.zeros_like(flat), torch.zeros_like(table)
        for s, diff in _pair_differences(flat, table, rows, index, ctx.step):
            pair = diff.sign_().mul_(grad[s : s + ctx.step].unsqueeze(-1)).view(-1, w)
            grad_q.index_add_(0, rows[s : s + ctx.step].reshape(-1), pair)
            grad_t.index_add_(0, index[s : s + ctx.step].reshape(-1), pair, alpha=-1.0)
        return grad_q.view(b, n_side, w), grad_t, None, None


def _pair_differences(flat: Tensor, table: Tensor, rows: Tensor, index: Tensor, step: int):
    """(first query of the chunk, flat[rows[chunk]] − table[index[chunk]] as [c, K, w]) for chunks
    of ``step`` queries, gathered into two buffers reused across chunks (allocating the chunk's
    tensors afresh each time cost 2–4× the arithmetic). Each yielded view is overwritten next."""
    k, w = index.shape[1], flat.shape[1]
    left = flat.new_empty(min(step, index.shape[0]) * k, w)
    right = torch.empty_like(left)
    for s in range(0, index.shape[0], step):
        chunk_rows, chunk_index = rows[s : s + step].reshape(-1), index[s : s + step].reshape(-1)
        n = chunk_rows.numel()
        diff = torch.index_select(flat, 0, chunk_rows, out=left[:n])
        diff.sub_(torch.index_select(table, 0, chunk_index, out=right[:n]))
        yield s, diff.view(-1, k, w)


def sampled_l1(queries: Tensor, table: Tensor, index: Tensor, side: Tensor) -> Tensor:
    """out[b, k] = ‖queries[b, side[b, k]] − table[index[b, k]]‖₁.

    queries [B, S, w], table [N, w], index and side [B, K] int64 → [B, K]; differentiable in
    ``queries`` and ``table`` (dense gradients), in cache-sized chunks, no [B, K, w] tensor kept.
    """
    return _SampledL1.apply(queries, table, index, side)


#: queries per block of :func:`l1_all`; candidates per block fill L1_CHUNK_FLOATS with them
L1_BLOCK_QUERIES = 16


def l1_all(q: Tensor, candidates: Tensor) -> Tensor:
    """out[b, n] = ‖q[b] − candidates[n]‖₁: q [B, w], candidates [N, w] → [B, N].

    On the CPU without gradients it works in [16, n, w] blocks of ≈ 4 MiB through one reused
    buffer (3–4× ``torch.cdist(p=1)`` there, which does not vectorise); elsewhere it is
    ``torch.cdist``.
    """
    if q.device.type != "cpu" or (torch.is_grad_enabled() and (q.requires_grad or candidates.requires_grad)):
        return torch.cdist(q, candidates, p=1.0)
    b, w = q.shape
    n = candidates.shape[0]
    step = max(1, L1_CHUNK_FLOATS // (L1_BLOCK_QUERIES * max(w, 1)))
    out = q.new_empty(b, n)
    buffer = q.new_empty(min(L1_BLOCK_QUERIES, b), min(step, n), w)
    for i in range(0, b, L1_BLOCK_QUERIES):
        rows = q[i : i + L1_BLOCK_QUERIES].unsqueeze(1)
        for j in range(0, n, step):
            cols = candidates[j : j + step].unsqueeze(0)
            block = buffer[: rows.shape[0], : cols.shape[1]]
            torch.sub(rows, cols, out=block).abs_()
            torch.sum(block, dim=-1, out=out[i : i + L1_BLOCK_QUERIES, j : j + step])
    return out
