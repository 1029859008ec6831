"""A small learnable graph in the user-graph format: the project's embedded demo dataset.

Structure (all vectorised with numpy; deterministic by seed):

- entities fall into clusters of about ``cluster_size``; each cluster has one *hub* (type
  ``category``) and members (type ``item``);
- ``instance_of`` (member → its hub) and its inverse ``has_instance``;
- further relation pairs ``link_k`` / ``link_k_inverse``: every member links to ``degree``
  random members of the cluster ``g_k(c)``, where ``g_k`` is a random pairing of clusters (an
  involution, so the relation is a function of the cluster that TransE *and* DistMult can fit);
- with an odd relation count, a symmetric ``similar_to`` inside each cluster.

A model that learns each entity's cluster ranks the right answers far above random. Texts name
the cluster's word, so a text encoder sees the structure too; ``1 - text_fraction`` of the
entities get no text (a missing modality).

The split is 80/10/10 of the triples; valid/test triples whose head, tail or relation would be
absent from train are moved to train, so every valid/test entity and relation occurs in train.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from vlkge.fileio import atomic_path

_SYLLABLES = ("ka", "lo", "mi", "ra", "ten", "vo", "su", "del", "bri", "an", "zo", "pe", "qui")
_ADJECTIVES = ("small", "bright", "ancient", "quiet", "rough", "golden", "hollow", "swift", "pale")
_NOUNS = ("stone", "river", "lantern", "garden", "engine", "feather", "harbor", "mirror", "tower")
SPLIT_LABELS = ("train", "val", "test")


def write_synthetic_graph(
    out_dir: str | Path,
    *,
    entities: int = 300,
    relations: int = 6,
    seed: int = 0,
    with_text: bool = True,
    cluster_size: int = 10,
    degree: int = 2,
    text_fraction: float = 0.9,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> Path:
    """Write ``triples.csv`` (head,relation,tail,mode) and ``entities.csv`` (entity,name,type
    [,text]) to ``out_dir`` atomically; return ``out_dir``."""
    if entities < 4 * 2 or relations < 1 or cluster_size < 2 or degree < 1:
        raise ValueError("need entities >= 8, relations >= 1, cluster_size >= 2, degree >= 1")
    rng = np.random.default_rng(seed)
    clusters = _Clusters(rng, entities, cluster_size)
    triples = _unique_shuffled(_cluster_triples(clusters, relations, degree, rng), entities, relations, rng)
    splits = _split(triples, entities, relations, split, rng)

    width = len(str(entities - 1))
    keys = pl.Series("entity", np.arange(entities)).cast(pl.String).str.zfill(width)
    keys = ("e" + keys).alias("entity")
    triple_table = pl.DataFrame(
        {
            "head": keys.gather(triples[:, 0]),
            "relation": pl.Series(_relation_names(relations)).gather(triples[:, 1]),
            "tail": keys.gather(triples[:, 2]),
            "mode": pl.Series(SPLIT_LABELS).gather(splits),
        }
    )
    entity_table = _entity_table(keys, clusters.cluster, clusters.hubs, rng, with_text, text_fraction)
    out = Path(out_dir)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        triple_table.write_csv(tmp / "triples.csv")
        entity_table.write_csv(tmp / "entities.csv")
    return out


class _Clusters:
    """A random partition of ``entities`` into clusters, each with one hub (its first member)."""

    def __init__(self, rng: np.random.Generator, entities: int, cluster_size: int) -> None:
        self.rng = rng
        self.n = max(2, entities // cluster_size)
        order = rng.permutation(entities)
        self.cluster = np.empty(entities, dtype=np.int64)
        self.cluster[order] = np.arange(entities) % self.n
        self.hubs = order[: self.n]  # hub of cluster c is hubs[c]
        self.members = np.sort(order[self.n :])
        self.by_cluster = self.members[np.argsort(self.cluster[self.members], kind="stable")]
        self.counts = np.bincount(self.cluster[self.members], minlength=self.n)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])

    def sample(self, heads: np.ndarray, target: np.ndarray, degree: int) -> np.ndarray:
        """``degree`` random members of cluster ``target[i]`` for each head: [len(heads)*degree]."""
        u = self.rng.random((len(heads), degree))
        pos = self.starts[target][:, None] + (u * self.counts[target][:, None]).astype(np.int64)
        return self.by_cluster[pos].ravel()


def _cluster_triples(
    clusters: _Clusters, relations: int, degree: int, rng: np.random.Generator
) -> np.ndarray:
    """(head, relation, tail) rows of every relation (see the module docstring), with repeats."""
    members, cluster = clusters.members, clusters.cluster
    parts: list[np.ndarray] = []
    rel = 0

    def add(h: np.ndarray, t: np.ndarray, inverse: bool) -> None:
        nonlocal rel
        parts.append(np.stack([h, np.full_like(h, rel), t], axis=1))
        if inverse:
            parts.append(np.stack([t, np.full_like(t, rel + 1), h], axis=1))
        rel += 2 if inverse else 1

    add(members, clusters.hubs[cluster[members]], inverse=relations >= 2)
    for _ in range((relations - 2) // 2):
        pairing = _cluster_pairing(rng, clusters.n)
        heads = np.repeat(members, degree)
        add(heads, clusters.sample(members, pairing[cluster[members]], degree), inverse=True)
    if relations >= 3 and relations % 2 == 1:
        heads = np.repeat(members, degree)
        tails = clusters.sample(members, cluster[members], degree)
        add(np.concatenate([heads, tails]), np.concatenate([tails, heads]), inverse=False)
    return np.concatenate(parts)


def _unique_shuffled(
    triples: np.ndarray, entities: int, relations: int, rng: np.random.Generator
) -> np.ndarray:
    """``triples`` without self-loops and repeats, in random order."""
    triples = triples[triples[:, 0] != triples[:, 2]]
    # Deduplicate on one int64 code per triple (sort-based: far faster than np.unique).
    code = np.sort((triples[:, 0] * relations + triples[:, 1]) * entities + triples[:, 2])
    code = code[np.concatenate([[True], code[1:] != code[:-1]])]
    code = code[rng.permutation(len(code))]
    return np.stack([code // (relations * entities), code // entities % relations, code % entities], axis=1)


def _relation_names(relations: int) -> list[str]:
    names = ["instance_of", "has_instance"][: min(relations, 2)]
    for k in range(1, (relations - 2) // 2 + 1):
        names += [f"link_{k}", f"link_{k}_inverse"]
    if relations >= 3 and relations % 2 == 1:
        names.append("similar_to")
    return names


def _cluster_pairing(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random involution of ``0..n-1``: clusters paired up (one fixed point when n is odd)."""
    perm = rng.permutation(n)
    pairing = np.arange(n)
    a, b = perm[0 : n - 1 : 2], perm[1:n:2]
    pairing[a], pairing[b] = b, a
    return pairing


def _split(
    triples: np.ndarray,
    n_entities: int,
    n_relations: int,
    fractions: tuple[float, float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Split index per triple (0 train, 1 valid, 2 test); unseen valid/test rows go to train."""
    total = sum(fractions)
    u = rng.random(len(triples)) * total
    splits = np.where(u < fractions[0], 0, np.where(u < fractions[0] + fractions[1], 1, 2))
    train = triples[splits == 0]
    seen_e = np.zeros(n_entities, dtype=bool)
    seen_e[train[:, 0]] = True
    seen_e[train[:, 2]] = True
    seen_r = np.zeros(n_relations, dtype=bool)
    seen_r[train[:, 1]] = True
    unseen = ~(seen_e[triples[:, 0]] & seen_e[triples[:, 2]] & seen_r[triples[:, 1]])
    splits[unseen] = 0
    return splits


def _entity_table(
    keys: np.ndarray,
    cluster: np.ndarray,
    hubs: np.ndarray,
    rng: np.random.Generator,
    with_text: bool,
    text_fraction: float,
) -> pl.DataFrame:
    n = len(keys)
    n_clusters = len(hubs)
    syl = rng.integers(0, len(_SYLLABLES), size=(n_clusters, 3))
    words = [
        "".join(_SYLLABLES[s] for s in row).capitalize() + str(c) for c, row in enumerate(syl)
    ]  # one per cluster (n / cluster_size strings), unique thanks to the number
    is_hub = np.zeros(n, dtype=bool)
    is_hub[hubs] = True
    frame = pl.DataFrame(
        {
            "entity": keys,
            "word": pl.Series(words).gather(cluster),
            "adj": pl.Series(_ADJECTIVES).gather(rng.integers(0, len(_ADJECTIVES), size=n)),
            "noun": pl.Series(_NOUNS).gather(rng.integers(0, len(_NOUNS), size=n)),
            "hub": is_hub,
            "has_text": rng.random(n) < text_fraction,
        }
    )
    frame = frame.with_columns(
        type=pl.when("hub").then(pl.lit("category")).otherwise(pl.lit("item")),
        name=pl.when("hub")
        .then(pl.format("{} family", "word"))
        .otherwise(pl.format("{} {} {}", "word", "noun", "entity")),
    )
    columns = ["entity", "name", "type"]
    if with_text:
        text = (
            pl.when("hub")
            .then(pl.format("the {} family, a group of related things", "word"))
            .otherwise(pl.format("a {} {} that belongs to the {} family", "adj", "noun", "word"))
        )
        frame = frame.with_columns(text=pl.when("has_text").then(text).otherwise(pl.lit("", dtype=pl.String)))
        columns.append("text")
    return frame.select(columns)


def write_scale_graph(
    out_dir: str | Path,
    *,
    entities: int,
    triples: int,
    relations: int = 22,
    alpha: float = 1.0,
    valid: int = 2000,
    test: int = 2000,
    seed: int = 0,
) -> Path:
    """A canonical graph of a given size for scale benchmarks, written straight to ``out_dir``
    (Parquet, no CSV round trip): ``triples`` distinct (h, r, t) with power-law entity degrees
    (entity of popularity rank k drawn with probability ∝ (k + 1)^-alpha, ranks shuffled) and
    Zipf-like relation frequencies; ``valid``/``test`` triples are drawn among those whose
    entities also occur in train. Returns ``out_dir``."""
    from vlkge.graph import write_graph

    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, entities + 1, dtype=np.float64) ** alpha
    cdf = np.cumsum(weights[rng.permutation(entities)])
    cdf /= cdf[-1]
    rel_cdf = np.cumsum(1.0 / np.arange(1, relations + 1))
    rel_cdf /= rel_cdf[-1]
    want = triples + valid + test
    codes = np.empty(0, dtype=np.int64)
    while len(codes) < want:  # draw, deduplicate, top up
        n = int((want - len(codes)) * 1.1) + 16
        h = np.searchsorted(cdf, rng.random(n)).clip(max=entities - 1)
        t = np.searchsorted(cdf, rng.random(n)).clip(max=entities - 1)
        r = np.searchsorted(rel_cdf, rng.random(n)).clip(max=relations - 1)
        keep = h != t
        new = (h[keep] * relations + r[keep]) * entities + t[keep]
        codes = np.unique(np.concatenate([codes, new]))
    codes = codes[rng.permutation(len(codes))[:want]]
    heads, rels, tails = codes // (relations * entities), codes // entities % relations, codes % entities
    table = np.stack([heads, rels, tails], axis=1)
    split = np.zeros(want, dtype=np.int64)
    # valid/test: entities every one of which also occurs in another (train) triple
    degree = np.bincount(table[:, 0], minlength=entities) + np.bincount(table[:, 2], minlength=entities)
    candidates = np.flatnonzero((degree[table[:, 0]] > 2) & (degree[table[:, 2]] > 2))
    held = rng.permutation(candidates)[: valid + test]
    split[held[:valid]], split[held[valid:]] = 1, 2
    labels = np.array(["train", "valid", "test"])
    keys = pl.Series("key", np.arange(entities)).cast(pl.String)
    entity_frame = pl.DataFrame(
        {
            "entity_id": np.arange(entities, dtype=np.int32),
            "key": "e" + keys,
            "type": pl.Series([None] * entities, dtype=pl.String),
            "name": "e" + keys,
            "text": pl.Series([None] * entities, dtype=pl.String),
            "images": pl.Series([[]] * entities, dtype=pl.List(pl.String)),
        }
    )
    relation_frame = pl.DataFrame(
        {"relation_id": np.arange(relations, dtype=np.int32), "key": [f"r{i}" for i in range(relations)]}
    )
    triple_frame = pl.DataFrame(
        {
            "head": table[:, 0].astype(np.int32),
            "relation": table[:, 1].astype(np.int32),
            "tail": table[:, 2].astype(np.int32),
            "split": labels[split],
        }
    )
    meta = {"dataset": f"scale-{entities}", "protocol": {"directions": "tail", "candidate_pools": "all"}}
    write_graph(out_dir, entity_frame, relation_frame, triple_frame, meta)
    return Path(out_dir)


def random_features(entities: int, dim: int = 768, fraction: float = 0.97, seed: int = 0):
    """Random L2-normalised float32 features for a random ``fraction`` of the entities, as a
    feature store holds them: (entity ids [n] int64, values [n, dim] float32)."""
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.permutation(entities)[: int(entities * fraction)])
    values = rng.standard_normal((len(ids), dim), dtype=np.float32)
    values /= np.linalg.norm(values, axis=1, keepdims=True)
    return ids, values
