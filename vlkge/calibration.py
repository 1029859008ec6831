"""The neighbour votes' starting weights, fitted to the training triples before training.

The prior's per-relation weights learn at ``train.prior_lr`` a step, so how far they can move
depends on how many steps a graph gives: a graph of 700,000 triples in batches of 16,384 gives 46
an epoch, one of 11,000 in batches of 512 gives 22 — and the votes' best weight differs by graph
(WikiArt's alike titles share artist, style and tags; WordNet's alike definitions less often share
a hypernym). So the features-only view's vote weights ``c_r``, ``d_r`` (:mod:`vlkge.prior`) start
where a logistic fit puts them: on a sample of training triples and uniform corruptions, with
one of the two entities treated as unseen (its own triples cannot vote, as for an entity never
seen in train), the view's other terms at their starting values and a bias per relation (its
value is dropped: ranking ignores it), with a small ridge (:data:`RIDGE`). The fit is strictly
convex (L-BFGS): one optimum, whatever the start. The joint view's vote weights
keep their start (0).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor

from vlkge.prior import ALONE, FeaturePrior
from vlkge.representations.base import EntityRepresentation

log = logging.getLogger(__name__)

#: training triples and corruptions per triple in the fit
SAMPLE, CORRUPTIONS = 20_000, 16
#: ridge on the weights in units of the view's similarity weight: a direction whose votes only
#: ever fall on corruptions (a functional relation's other answers) is separable, its unpenalised
#: weight unbounded (WikiArt-v1's isCreatedInYear: −845 after 200 L-BFGS steps, from one start)
RIDGE = 1e-3


@torch.no_grad()
def _pairs(
    prior: FeaturePrior, reps: EntityRepresentation, h: Tensor, r: Tensor, t: Tensor, unseen_head: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The fixed part of the features-only view and the two votes of pairs [*] (global ids), the
    head or the tail without triples (``unseen_head`` [*])."""
    device = prior.alone_weight.device
    fixed = prior.alone_weight[r] * reps.similarity(h.to(device), t.to(device))
    fixed = fixed + prior._mention(ALONE, r, prior._mentioned(h, t))
    fwd, bwd = prior.votes.pairs(h, r, t, ~unseen_head, unseen_head)
    return fixed.cpu(), fwd, bwd


def _sample(
    prior: FeaturePrior, reps: EntityRepresentation, train: Tensor, candidates: Tensor, seed: int
) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]:
    """The fit's data: relations of the positives [S] and of their corruptions [S, K], and both
    as (fixed part, fwd, bwd)."""
    generator = torch.Generator().manual_seed(seed)
    train = train.cpu()
    sample = train[torch.randperm(len(train), generator=generator)[:SAMPLE]]
    h, r, t = sample[:, 0], sample[:, 1], sample[:, 2]
    b = len(sample)
    unseen_head = torch.rand(b, generator=generator) < 0.5
    corrupt_head = torch.rand(b, CORRUPTIONS, generator=generator) < 0.5
    drawn = candidates.cpu()[torch.randint(0, len(candidates), (b, CORRUPTIONS), generator=generator)]
    heads = torch.where(corrupt_head, drawn, h.unsqueeze(1))
    tails = torch.where(corrupt_head, t.unsqueeze(1), drawn)
    rr = r.unsqueeze(1).expand_as(heads)
    positive = _pairs(prior, reps, h, r, t, unseen_head)
    negative = _pairs(prior, reps, heads, rr, tails, unseen_head.unsqueeze(1).expand_as(heads))
    return r, rr, positive, negative


def _loss(weights: Tensor, bias: Tensor, r: Tensor, rr: Tensor, positive, negative, scale: float) -> Tensor:
    """The fit's logistic loss under vote weights [R, 2] and biases [R], plus the ridge on the
    weights in units of ``scale`` (:data:`RIDGE`)."""

    def score(pairs: tuple[Tensor, Tensor, Tensor], rel: Tensor) -> Tensor:
        fixed, fwd, bwd = pairs
        return fixed + weights[rel, 0] * fwd + weights[rel, 1] * bwd + bias[rel]

    ridge = RIDGE / 2 * (weights / scale).pow(2).sum()
    return F.softplus(-score(positive, r)).mean() + F.softplus(score(negative, rr)).mean() + ridge


@torch.no_grad()
def _loss_at(
    prior: FeaturePrior, reps: EntityRepresentation, train: Tensor, candidates: Tensor, seed: int
) -> float:
    """The fit's loss at the prior's present features-only vote weights, the bias at 0."""
    r, rr, positive, negative = _sample(prior, reps, train, candidates, seed)
    weights = prior.vote[ALONE].detach().cpu().T
    scale = float(prior.alone_weight.detach().mean())
    return float(_loss(weights, torch.zeros(weights.shape[0]), r, rr, positive, negative, scale))


def calibrate_votes(
    prior: FeaturePrior, reps: EntityRepresentation, train: Tensor, candidates: Tensor, seed: int
) -> None:
    """Set ``prior.vote`` from a logistic fit on ``train`` [T, 3] (module docstring); corruptions
    drawn from ``candidates`` [C] (entity ids)."""
    if prior.votes is None or prior.alone_weight is None:
        return
    r, rr, positive, negative = _sample(prior, reps, train, candidates, seed)
    weights = prior.vote[ALONE].detach().cpu().T.contiguous().requires_grad_(True)  # [R, 2]
    bias = torch.zeros(weights.shape[0], requires_grad=True)
    scale = float(prior.alone_weight.detach().mean())  # the view's similarity weight, at its start
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = _loss(weights, bias, r, rr, positive, negative, scale)
        loss.backward()
        return loss

    optimizer.step(closure)
    fitted = weights.detach().T.to(prior.vote.device)  # [2, R]
    with torch.no_grad():
        prior.vote[ALONE].copy_(fitted)
    log.info(
        "neighbour votes: weights fitted to %d training triples (mean %.2f)", len(r), float(fitted.mean())
    )
