"""Scores of a batch of queries against sampled candidate rows, without materialising them all.

Training with K negatives per positive needs ⟨q_b, e_{idx[b,k]}⟩ for B·K pairs. Gathering the rows
first builds a [B, K, w] tensor (hundreds of MB at the paper's settings) whose allocation and
backward scatter dominate an epoch. :func:`sampled_dot` works through the batch in row chunks of
bounded size, forward and backward, with batched matrix products, and accumulates gradients
straight into the [B, S, w] queries and the [N, w] table.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: floats in one chunk's gathered rows (rows × K × w); 4M floats = 16 MiB
CHUNK_FLOATS = 1 << 22


def _rows_per_chunk(k: int, w: int) -> int:
    return max(1, CHUNK_FLOATS // max(1, k * w))


class _SampledDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, queries: Tensor, table: Tensor, index: Tensor, side: Tensor) -> Tensor:
        b, k = index.shape
        step = _rows_per_chunk(k, table.shape[1])
        out = torch.empty(b, k, dtype=queries.dtype, device=queries.device)
        for s in range(0, b, step):
            rows = table[index[s : s + step]]  # [c, K, w]
            both = torch.bmm(rows, queries[s : s + step].transpose(1, 2))  # [c, K, S]
            out[s : s + step] = both.gather(2, side[s : s + step].unsqueeze(2)).squeeze(2)
        ctx.save_for_backward(queries, table, index, side)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        queries, table, index, side = ctx.saved_tensors
        b, k = index.shape
        n_side = queries.shape[1]
        step = _rows_per_chunk(k, table.shape[1])
        grad_q = torch.zeros_like(queries) if ctx.needs_input_grad[0] else None
        grad_t = torch.zeros_like(table) if ctx.needs_input_grad[1] else None
        for s in range(0, b, step):
            idx, sd = index[s : s + step], side[s : s + step]
            # spread each pair's gradient onto its query side: [c, K, S]
            g = torch.zeros(idx.shape[0], k, n_side, dtype=grad.dtype, device=grad.device)
            g.scatter_(2, sd.unsqueeze(2), grad[s : s + step].unsqueeze(2))
            if grad_q is not None:
                grad_q[s : s + step] = torch.bmm(g.transpose(1, 2), table[idx])  # [c, S, w]
            if grad_t is not None:
                contrib = torch.bmm(g, queries[s : s + step])  # [c, K, w]
                grad_t.index_add_(0, idx.reshape(-1), contrib.reshape(-1, table.shape[1]))
        return grad_q, grad_t, None, None


def sampled_dot(queries: Tensor, table: Tensor, index: Tensor, side: Tensor) -> Tensor:
    """out[b, k] = ⟨queries[b, side[b, k]], table[index[b, k]]⟩.

    queries [B, S, w] (S query variants per row, e.g. head- and tail-side queries), table [N, w],
    index [B, K] int64, side [B, K] int64 in [0, S) → [B, K]. Differentiable in ``queries`` and
    ``table``; extra memory is bounded by ``CHUNK_FLOATS``.
    """
    return _SampledDot.apply(queries, table, index, side)
