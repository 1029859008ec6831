"""TuckER, a backbone with a parameter of its own (the core tensor): its three score forms agree,
the core gets gradients and is trained, saved and loaded with the model, and its options reach it
from the parameters."""

from __future__ import annotations

import pytest
import torch

from vlkge.config import load_config
from vlkge.errors import ConfigError
from vlkge.evaluation import evaluate
from vlkge.interactions import make_interaction
from vlkge.model import build_model
from vlkge.runs import load_model
from vlkge.training import Trainer

DIM, REL, N, B, K = 6, 4, 11, 5, 7


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    inter = make_interaction("tucker", dim=DIM, options={"relation_dim": REL}).double()
    ent = torch.randn(N, inter.entity_width, dtype=torch.float64)
    rel = torch.randn(3, inter.relation_width, dtype=torch.float64)
    h, r, t = torch.randint(0, N, (B,)), torch.randint(0, 3, (B,)), torch.randint(0, N, (B,))
    return inter, ent, rel, h, r, t


def test_elementwise_score_is_the_tucker_product():
    inter, ent, rel, h, r, t = _setup()
    expected = torch.einsum("bi,ijk,bj,bk->b", ent[h], inter.core, rel[r], ent[t])
    torch.testing.assert_close(inter.score(ent[h], rel[r], ent[t]), expected)


def test_one_vs_all_forms_agree_with_the_elementwise_score():
    inter, ent, rel, h, r, t = _setup(1)
    tails = inter.score_tails(ent[h], rel[r], ent)  # [B, N]
    heads = inter.score_heads(rel[r], ent[t], ent)
    for b in range(B):
        every = torch.arange(N)
        torch.testing.assert_close(
            tails[b], inter.score(ent[h[b]].expand(N, -1), rel[r[b]].expand(N, -1), ent[every])
        )
        torch.testing.assert_close(
            heads[b], inter.score(ent[every], rel[r[b]].expand(N, -1), ent[t[b]].expand(N, -1))
        )


def test_sampled_form_agrees_with_the_elementwise_score():
    inter, ent, rel, h, r, t = _setup(2)
    index = torch.randint(0, N, (B, K))
    corrupt_head = torch.rand(B, K) < 0.5
    queries = torch.stack([inter.head_query(rel[r], ent[t]), inter.tail_query(ent[h], rel[r])], dim=1)
    got = inter.compare_sampled(queries, ent, index, (~corrupt_head).long())
    heads = torch.where(corrupt_head, index, h[:, None])
    tails = torch.where(corrupt_head, t[:, None], index)
    torch.testing.assert_close(got, inter.score(ent[heads], rel[r][:, None, :], ent[tails]))


def test_the_gradient_reaches_the_core_in_every_form():
    inter, ent, rel, h, r, t = _setup(3)
    index = torch.randint(0, N, (B, K))
    side = torch.randint(0, 2, (B, K))
    queries = torch.stack([inter.head_query(rel[r], ent[t]), inter.tail_query(ent[h], rel[r])], dim=1)
    forms = [
        inter.score(ent[h], rel[r], ent[t]),
        inter.score_tails(ent[h], rel[r], ent),
        inter.score_heads(rel[r], ent[t], ent),
        inter.compare_sampled(queries, ent, index, side),
    ]
    for form in forms:
        inter.core.grad = None
        form.sum().backward(retain_graph=True)
        assert inter.core.grad is not None and inter.core.grad.abs().sum() > 0


def _params(**model):
    spec = {"backbone": "tucker", "dim": 16, "backbone_options": {"relation_dim": 8}, **model}
    train = {"epochs": 8, "batch_size": 128, "negatives": 8, "eval_every": 4, "device": "cpu", "threads": 1}
    return load_config(overrides={"model": spec, "train": train, "seed": 5})


def test_options_reach_it_from_the_parameters_and_unknown_ones_are_refused():
    model = build_model(_params(), 20, 3)
    assert model.interaction.core.shape == (16, 8, 16) and model.relation.weight.shape == (3, 8)
    assert "interaction.core" in model.state_dict()
    with pytest.raises(ConfigError) as info:
        build_model(_params(backbone_options={"rank": 3}), 20, 3)
    assert info.value.key == "model.backbone_options.rank" and "relation_dim" in str(info.value)
    with pytest.raises(ConfigError, match=r"relation_dim"):
        build_model(_params(backbone_options={"relation_dim": 0}), 20, 3)


def test_it_trains_and_its_core_is_saved_with_the_run(demo_graph, tmp_path):
    trainer = Trainer(demo_graph, _params(), tmp_path / "tucker")
    before = trainer.model.interaction.core.detach().clone()
    trainer.fit(show=False, log=None)
    assert not torch.equal(trainer.model.interaction.core, before)  # the optimiser updates it
    loaded = load_model(tmp_path / "tucker", demo_graph)
    mrr = evaluate(loaded, demo_graph, "test")["overall"]["mrr"]
    random_mrr = sum(1 / k for k in range(1, demo_graph.num_entities + 1)) / demo_graph.num_entities
    assert mrr > 10 * random_mrr, f"TuckER MRR {mrr:.3f} vs random {random_mrr:.3f}"
