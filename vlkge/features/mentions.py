"""Text mentions: which entities' texts name which other entities.

An entity's text often names the entities it is linked to ("turnover: a *dish* made by folding a
piece of *pastry* over a filling" names its hypernym); a sentence vector keeps the gist of a text
and loses those names. ``M[i, j] = 1`` when entity j's name occurs in entity i's text as a whole
run of words (lower-cased letters and digits; the text's own entity's name is not a mention of
its namesakes), else 0; a name found in more than half of the texts is a common word there and is
not counted, and a name more than :data:`MAX_NAMESAKES` entities bear identifies none of them
(WikiArt: 3,385 artworks titled "Untitled", named by every "Untitled 1"; WordNet's most shared
lemma names 4 synsets). The matrix is read from the graph's ``name`` and ``text`` columns, so it
is there for an entity never seen in training exactly as its features are, and a new entity's
mentions come from its text (and name) alone (:meth:`Mentions.of_new`).

Stored sparse: sorted pair keys ``i·N + j`` for pair lookups and row lists both ways (texts that
an entity's text names, texts that name it) for 1-vs-all rows.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

import torch
from torch import Tensor

from vlkge.csr import KeyedSums, Lists, scatter_rows

_WORD = re.compile(r"[^\W_]+")
#: a name borne by more entities than this is no mention of any of them
MAX_NAMESAKES = 10


def words(text: str) -> tuple[str, ...]:
    """The lower-cased runs of letters and digits of ``text``."""
    return tuple(_WORD.findall(text.lower()))


class NameIndex:
    """Entity names as word tuples → the ids of the entities that bear them."""

    def __init__(self, names: Sequence[str | None]) -> None:
        bearers: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for i, name in enumerate(names):
            key = words(name or "")
            if key:
                bearers[key].append(i)
        #: names too many entities bear (:data:`MAX_NAMESAKES`): left out of the index
        self.ambiguous = {key for key, ids in bearers.items() if len(ids) > MAX_NAMESAKES}
        self.ids = {key: ids for key, ids in bearers.items() if key not in self.ambiguous}
        self.lengths = sorted({len(k) for k in self.ids})

    def named_in(self, text: str, own: str | None = None) -> set[int]:
        """Ids of the entities whose name occurs in ``text`` (not those named ``own``: a text's
        own entity's name)."""
        tokens, skip = words(text or ""), words(own or "")
        found: set[int] = set()
        for start in range(len(tokens)):
            for length in self.lengths:
                if start + length > len(tokens):
                    break
                key = tokens[start : start + length]
                if key != skip:
                    found.update(self.ids.get(key, ()))
        return found


class Mentions:
    """The mention matrix ``M`` [N, N] of a graph (module docstring), sparse."""

    def __init__(self, pairs: Tensor, num_entities: int, index: NameIndex | None = None) -> None:
        """``pairs`` [P, 2] (i, j): i's text names j."""
        self.num_entities = n = num_entities
        self.index = index
        pairs = pairs.long().reshape(-1, 2)
        self._lookup = KeyedSums(pairs[:, 0] * n + pairs[:, 1])
        self.keys = self._lookup.keys  # sorted, distinct
        self._names = Lists(self.keys // n, self.keys % n, n)  # i → the j its text names
        by_named = self.keys % n * n + self.keys // n
        order = torch.sort(by_named).values
        self._named_by = Lists(order // n, order % n, n)  # j → the i whose text names it

    @classmethod
    def from_texts(cls, names: Sequence[str | None], texts: Sequence[str | None]) -> Mentions:
        """Mentions among entities with ``names`` [N] and ``texts`` [N] (None: none)."""
        index = NameIndex(names)
        pairs = [
            (i, j) for i, text in enumerate(texts) for j in index.named_in(text or "", names[i]) if j != i
        ]
        tensor = torch.tensor(pairs, dtype=torch.long) if pairs else torch.zeros(0, 2, dtype=torch.long)
        # a name in more than half of the texts is a common word there: it tells nothing apart
        # (and would make the matrix dense)
        common = torch.bincount(tensor[:, 1], minlength=len(names)) > len(names) / 2
        return cls(tensor[~common[tensor[:, 1]]], len(names), index)

    def __len__(self) -> int:
        return len(self.keys)

    def pairs(self, i: Tensor, j: Tensor) -> Tensor:
        """``M[i, j]`` of global ids of one shape [*] → float [*]."""
        query = i.long() * self.num_entities + j.long()
        return self._lookup.on(query.device).holds(query).float()

    def names(self, ids: Tensor, among: Tensor | None = None) -> Tensor:
        """``M[ids]`` [B, N]: which entities the texts of ``ids`` [B] name (only the columns of
        the entity ids ``among`` [P], in that order, when given: [B, P])."""
        return self._dense(self._names, ids, among)

    def named_by(self, ids: Tensor, among: Tensor | None = None) -> Tensor:
        """``M[:, ids]ᵀ`` [B, N]: which entities' texts name ``ids`` [B] ([B, P] ``among``)."""
        return self._dense(self._named_by, ids, among)

    def _dense(self, lists: Lists, ids: Tensor, among: Tensor | None) -> Tensor:
        """Rows ``ids`` [B] of the 0/1 matrix ``lists`` holds → [B, N] on ids' device (the columns
        ``among`` [P]: [B, P])."""
        owner, column, weight = lists.expand(ids.long().cpu())
        return scatter_rows(owner, column, weight, len(ids), self.num_entities, among).to(ids.device)

    def of_new(
        self, text: str | None, name: str | None, names: Sequence[str | None], texts: Sequence[str | None]
    ) -> tuple[Tensor, Tensor]:
        """A new entity's rows ([N], [N]): the graph's entities its ``text`` names, and those whose
        texts name it (by its ``name``; none without one). ``names``/``texts``: the graph's."""
        index = self.index or NameIndex(names)
        out = torch.zeros(self.num_entities)
        named = sorted(index.named_in(text or "", name))
        out[named] = 1.0
        back = torch.zeros(self.num_entities)
        if name and words(name) and words(name) not in index.ambiguous:
            own = NameIndex([name])
            back[[i for i, t in enumerate(texts) if own.named_in(t or "", names[i])]] = 1.0
        return out, back
