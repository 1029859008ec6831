"""Text mentions (vlkge.features.mentions) and the prior's use of them: which texts name which
entities, the sparse rows against the pair lookups, and a new entity scored like an unseen one."""

from __future__ import annotations

import pytest
import torch

from tests.vl_data import IMAGES, UNSEEN, encode_tiny, tiny_clip, vl_params, write_tiny_vl_graph
from vlkge import api
from vlkge.config import config_from_record
from vlkge.features.mentions import MAX_NAMESAKES, Mentions
from vlkge.neighbours import load_scorer
from vlkge.predict import encode_query, predict
from vlkge.runs import load_run
from vlkge.training import Trainer

NAMES = ["dish", "pastry", "turnover", "hot pot", "dish", "pot", None]
TEXTS = [
    "dish: a particular item of prepared food",
    "pastry: a dough of flour and water and shortening",
    "turnover: a dish made by folding a piece of Pastry over a filling",
    "hot pot: a stew of meat and potatoes cooked in a tightly covered pot",
    "dish: a piece of dishware normally used as a container for holding or serving food",
    "pot: a container; the dishwasher is not a dish-washer",
    "an entity with no name names the hot pot",
]


def test_a_text_names_whole_word_runs_of_other_entities_names():
    m = Mentions.from_texts(NAMES, TEXTS)
    dense = m.names(torch.arange(len(NAMES)))
    named = {i: set(dense[i].nonzero().flatten().tolist()) for i in range(len(NAMES))}
    assert named[2] == {0, 1, 4}  # "dish" names both namesakes; case ignored ("Pastry")
    assert named[3] == {5}  # its own name is not a mention of itself; the word "pot" names entity 5
    assert named[0] == set() and named[4] == set()  # a text's own name does not name its namesake
    assert named[5] == {0, 4}  # "dish-washer" holds the word "dish"; "dishwasher" does not
    assert named[6] == {3, 5}  # an entity without a name still names others
    assert not dense[:, 6].any()  # and is named by none


def test_a_name_in_more_than_half_of_the_texts_is_not_a_mention():
    names = ["water", "ice", "steam", "snow", "fog"]
    texts = ["water", "ice: frozen water", "steam: water as gas", "snow: ice crystals", "fog: water drops"]
    m = Mentions.from_texts(names, texts)
    named = m.names(torch.arange(5))
    assert not named[:, 0].any()  # "water" is in 4 of the 5 texts
    assert named[3, 1] == 1 and len(m) == 1  # "ice" (1 of 5) still counts


def test_a_name_too_many_entities_bear_names_none_of_them():
    k = MAX_NAMESAKES
    names = ["untitled"] * (k + 1) + ["untitled 1", "mill", "windmill"] + ["mill"] * (k - 1)
    texts = [None] * (k + 1) + ["untitled 1 near the mill", "a mill by the windmill", "the windmill"]
    m = Mentions.from_texts(names, texts + [None] * (k - 1))
    named = m.names(torch.arange(len(names)))
    mills = [i for i, name in enumerate(names) if name == "mill"]  # k bearers: still mentions
    assert not named[:, : k + 1].any()  # "untitled": k + 1 bearers, a mention of none
    assert named[k + 1, mills].all() and named[k + 1].sum() == k
    assert named[k + 2].tolist() == [float(i == k + 3) for i in range(len(names))]  # own name skipped
    assert not named[k + 3].any()  # "windmill" is not "mill": whole words only


def test_sparse_rows_agree_with_pair_lookups_and_a_new_entity_with_the_same_text():
    m = Mentions.from_texts(NAMES, TEXTS)
    n = len(NAMES)
    every = torch.arange(n)
    for i in range(n):
        assert torch.equal(m.names(torch.tensor([i]))[0], m.pairs(torch.full((n,), i), every))
        assert torch.equal(m.named_by(torch.tensor([i]))[0], m.pairs(every, torch.full((n,), i)))
        names, named_by = m.of_new(TEXTS[i], NAMES[i], NAMES, TEXTS)
        expected_back = m.named_by(torch.tensor([i]))[0]
        if NAMES[i] is not None:  # a namesake of i is named wherever i is
            expected_back = expected_back.clone()
            for j in range(n):
                if j != i and NAMES[j] == NAMES[i]:
                    expected_back = torch.maximum(expected_back, m.named_by(torch.tensor([j]))[0])
        assert torch.equal(names, m.names(torch.tensor([i]))[0]), i
        assert torch.equal(named_by, expected_back), i


def _naming_text(i: int) -> str:
    """Each text names the next entity of its chain (relation ``next``: i → i + 1)."""
    follows = f", comes before thing {i + 1}" if (i + 1) % 4 else ""
    return f"thing {i}, member of group {i // 4}{follows}"


@pytest.mark.skipif(not IMAGES.is_dir(), reason="shared images not found")
def test_the_prior_reads_mentions_and_predict_gives_a_new_entity_the_unseen_ones_scores(tmp_path):
    graph = write_tiny_vl_graph(tmp_path / "tiny-vl", text_of=_naming_text)
    encode_tiny(graph)
    run_dir = tmp_path / "run"
    Trainer(graph, vl_params(), run_dir).fit(show=False, log=None)
    opened = load_run(run_dir, device="cpu")
    model = opened.model
    assert model.prior.mentions is not None and len(model.prior.mentions) == 18  # 6 groups × 3
    start = torch.tensor([0.5, 0.5 * 10.0]).view(2, 1, 1).expand(2, 2, 2)
    assert not torch.allclose(model.prior.mention.detach(), start)  # the weights learned
    # the unseen entity 23 is named by 22's text: scored as a head of `next`, 22 gains the
    # forward-mention weight of the features-only view over a model without it
    with torch.no_grad():
        r, u = torch.tensor([0]), torch.tensor([UNSEEN])
        heads = model.score_heads(r, u)[0]
        weights = model.prior.mention.detach().clone()
        model.prior.mention.zero_()
        plain = model.score_heads(r, u)[0]
        model.prior.mention.copy_(weights)
    gain = heads - plain
    assert gain[22] == pytest.approx(float(weights[1, 0, 0]), abs=1e-5)
    assert torch.count_nonzero(gain) == 1
    # scored against a candidate pool (evaluation's per-relation pools), every term gives the
    # full scores' columns, the unseen entity among them (its own similarity stays 0)
    among = torch.tensor([22, 3, UNSEEN, 0, 17])
    anchors, rels = torch.tensor([UNSEEN, 22, 5]), torch.tensor([0, 0, 1])
    with torch.no_grad():
        for score in (model.score_tails, lambda a, r, c=None, among=None: model.score_heads(r, a, c, among)):
            full = score(anchors, rels)
            torch.testing.assert_close(score(anchors, rels, among=among), full[:, among])
    text, name = graph.entities["text"][UNSEEN], graph.entities["name"][UNSEEN]
    query = encode_query(tiny_clip(), None, text, opened.features)
    for head in (False, True):
        result = predict(model, opened.graph, query, "next", k=8, head=head, text=text, name=name)
        with torch.no_grad():
            scores = (model.score_heads(r, u) if head else model.score_tails(u, r))[0]
        got = {a["entity_id"]: a["score"] for a in result.answers if a["entity_id"] != UNSEEN}
        assert got and all(v == pytest.approx(float(scores[i]), abs=1e-4) for i, v in got.items())


@pytest.mark.skipif(not IMAGES.is_dir(), reason="shared images not found")
def test_the_baseline_with_mentions_adds_half_of_each_direction_and_sits_beside_a_run(tmp_path):
    data = tmp_path / "data"
    graph = write_tiny_vl_graph(data / "tiny-vl", text_of=_naming_text)
    store = encode_tiny(graph)
    anchors = torch.arange(graph.num_entities)
    plain = load_scorer(graph, store, "text").similarity(anchors)
    scorer = load_scorer(graph, store, "text", mentions=True)
    named = scorer.mentions.names(anchors) + scorer.mentions.named_by(anchors)
    assert named.sum() == 2 * 18
    expected = plain + 0.5 * named
    expected[anchors, anchors] = plain[anchors, anchors]  # the anchor itself stays SELF
    assert torch.allclose(scorer.similarity(anchors), expected)
    among = torch.tensor([4, 0, 9, 23])
    torch.testing.assert_close(scorer.similarity(anchors, among), scorer.similarity(anchors)[:, among])
    Trainer(graph, vl_params(), data / "tiny-vl" / "models" / "vl").fit(show=False, log=None)
    config = vl_params()
    result = api.evaluate("vl", config, data, dataset="tiny-vl").metrics
    sets = result["neighbours"]["results"]
    assert set(sets) == {"text", "image", "both", "text+mentions", "both+mentions"}
    assert sets["text+mentions"]["setup"]["mentions"] == 0.5 and sets["text"]["setup"]["mentions"] is None
    best = {group: entry["baseline"] for group, entry in result["neighbours"]["model_over_best"].items()}
    overall = {name: r["overall"]["mrr"] for name, r in sets.items()}
    assert overall[best["overall"]] == max(overall.values())


def test_a_run_recorded_before_mentions_existed_loads_without_them():
    """Its weights have no mention parameters: the key takes the value it had before it existed,
    not today's default; a run that recorded it keeps its own."""
    old = {"model": {"backbone": "distmult", "modalities": ["structural", "textual"]}}
    assert config_from_record(old, source="old run").model.mentions == 0.0
    assert old["model"] == {"backbone": "distmult", "modalities": ["structural", "textual"]}  # untouched
    new = {"model": {**old["model"], "mentions": 0.5}}
    assert config_from_record(new, source="new run").model.mentions == 0.5
