"""Property tests (hypothesis): the user-graph reader and the params loader never fail with
anything but our own error type.

- any ``triples.csv`` / ``train.txt``+``valid.txt``+``test.txt`` / ``entities.csv`` content →
  ``crawl`` + ``clean`` give a valid canonical graph, or a :class:`VlkgeError`;
- any params file → ``load_params`` gives parameters of the defaults' types that pass the value
  checks, or a :class:`VlkgeError`.

Budget: ``VLKGE_FUZZ_EXAMPLES`` examples per property (default 60, about 20 s in all on 2 busy
cores); derandomized so CI is repeatable; raise the count to search longer.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vlkge.pipeline.custom import CustomAdapter

from vlkge.config import default_params, load_params, merge
from vlkge.errors import VlkgeError
from vlkge.graph import SPLITS, validate_graph

EXAMPLES = int(os.environ.get("VLKGE_FUZZ_EXAMPLES", "60"))
BUDGET = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# fields that are mostly plausible, with the characters that break readers mixed in
FIELD = st.one_of(
    st.sampled_from(["a", "b", "c", "d", "r1", "r2", "train", "val", "valid", "test", "TRAIN", "dev"]),
    st.sampled_from(["", " ", '"', '""', 'a"b', "x,y", "a\tb", "é", "\ufeff", "\x00", "\r", "images/a.jpg"]),
    st.text(max_size=6),
)
DELIMITER = st.sampled_from([",", ",", ",", "\t", ";"])
NEWLINE = st.sampled_from(["\n", "\n", "\r\n", "\r"])


@st.composite
def table_text(draw, header: list[str] | None) -> bytes:
    """A delimited file: an optional (possibly damaged) header, then rows of drawn fields."""
    delimiter, newline = draw(DELIMITER), draw(NEWLINE)
    lines = []
    if header is not None:
        names = draw(st.one_of(st.just(header), st.permutations(header), st.lists(FIELD, max_size=5)))
        lines.append(delimiter.join(names))
    width = len(header) if header else 3
    for _ in range(draw(st.integers(0, 12))):
        count = draw(st.one_of(st.just(width), st.integers(0, width + 2)))
        lines.append(delimiter.join(draw(FIELD) for _ in range(count)))
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace")


def raw_bytes() -> st.SearchStrategy[bytes]:
    return st.binary(max_size=200)


GRAPH_INPUT = st.one_of(
    st.fixed_dictionaries(
        {"triples.csv": st.one_of(table_text(["head", "relation", "tail", "mode"]), raw_bytes())},
        optional={"entities.csv": st.one_of(table_text(["entity", "text", "image"]), raw_bytes())},
    ),
    st.fixed_dictionaries(
        {"train.txt": table_text(None)},
        optional={"valid.txt": table_text(None), "test.txt": table_text(None)},
    ),
)
CLEAN = st.fixed_dictionaries(
    {
        "unseen": st.sampled_from(["drop", "fail", "keep"]),
        "allow_unlisted_entities": st.booleans(),
    }
)


def crawl_and_clean(files: dict[str, bytes], clean: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source, data = Path(tmp) / "source", Path(tmp) / "data"
        source.mkdir()
        (source / "images").mkdir()
        (source / "images" / "a.jpg").write_bytes(b"not checked here")
        for name, content in files.items():
            (source / name).write_bytes(content)
        params = {**default_params(), "clean": {**default_params()["clean"], **clean}}
        params["crawl"] = {"source": str(source), "images": None}
        adapter = CustomAdapter()
        try:
            adapter.crawl("custom:fuzz", str(source), data / "raw", params)
            graph = adapter.clean("custom:fuzz", data / "raw", data / "graph", params)
        except VlkgeError:
            assert not (data / "graph").exists()  # a refused input leaves no graph behind
            return
        validate_graph(graph)
        assert len(graph.triples["train"]) > 0
        assert sum(len(graph.triples[s]) for s in SPLITS) <= sum(len(c.splitlines()) for c in files.values())
        keys = graph.entity_keys
        assert len(set(keys)) == len(keys) and all(k == k.strip() and k for k in keys)
        if not graph.protocol["inductive"]:
            train = graph.triples["train"]
            seen = np.zeros(graph.num_entities, dtype=bool)
            seen[train[:, [0, 2]].ravel()] = True
            for split in ("valid", "test"):
                assert seen[graph.triples[split][:, [0, 2]].ravel()].all()


@BUDGET
@given(files=GRAPH_INPUT, clean=CLEAN)
def test_any_graph_input_gives_a_valid_graph_or_our_error(files, clean):
    crawl_and_clean(files, clean)


# ----------------------------------------------------------------------------- params

DEFAULTS = default_params()
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["cpu", "cuda:0", "cuda:x", "auto", "transe", "rotate", "adam", "{text}", "{", "}{"]),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def params_tree(draw) -> dict:
    """A params mapping over mostly known keys (sections and their keys) with drawn values."""
    tree: dict = {}
    for section in draw(st.lists(st.sampled_from([*DEFAULTS, "nonsense"]), max_size=4, unique=True)):
        default = DEFAULTS.get(section)
        if isinstance(default, dict) and draw(st.booleans()):
            keys = st.sampled_from([*default, "typo"])
            tree[section] = draw(st.dictionaries(keys, VALUE, max_size=4))
        else:
            tree[section] = draw(VALUE)
    return tree


PARAMS_TEXT = st.one_of(
    params_tree().map(lambda tree: yaml.safe_dump(tree, allow_unicode=True).encode("utf-8")),
    st.text(alphabet=st.sampled_from(list("abcdeim:-[]{}'\"#&*!|>%@`\t\n 0123.,")), max_size=80).map(
        str.encode
    ),
    raw_bytes(),
)


def _same_types(params: dict, defaults: dict) -> None:
    """A loaded tree has the defaults' keys; its values the defaults' types (null defaults free)."""
    assert set(params) == set(defaults)
    for key, default in defaults.items():
        value = params[key]
        if isinstance(default, dict) and default:
            _same_types(value, default)
        elif default is not None:
            assert type(value) is type(default) or (isinstance(default, float) and isinstance(value, float))


@BUDGET
@given(content=PARAMS_TEXT)
def test_any_params_file_gives_valid_params_or_our_error(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_bytes(content)
        try:
            params = load_params(path)
        except VlkgeError:
            return
    _same_types(params, DEFAULTS)
    leaves = [
        v
        for section in params.values()
        for v in (section.values() if isinstance(section, dict) else [section])
    ]
    assert all(np.isfinite(v) for v in leaves if isinstance(v, float))
    merge(DEFAULTS, params, source="round trip")  # what was accepted is accepted again


@pytest.mark.parametrize(
    "text",
    [
        "model:\n  dim: null\n",  # an empty value for a key that needs one
        "train:\n  device: null\n",
        "model:\n  dim: .inf\n",
        "train:\n  lr: .nan\n",
        "seed: 1e400\n",
        "train:\n  lr: .inf\n",
        "train:\n  min_delta: .nan\n",
    ],
)
def test_found_by_fuzzing_are_refused_with_the_key(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(VlkgeError) as info:
        load_params(path)
    assert info.value.key is not None


def test_an_emptied_section_keeps_its_defaults(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  # epochs: 3\nmodel:\n  dim: 16\n")
    params = load_params(path)
    assert params["train"] == DEFAULTS["train"] and params["model"]["dim"] == 16
