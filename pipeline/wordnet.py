"""WN9-IMG's entity text from Princeton WordNet 3.0: name, lemmas and definition of each synset.

WN9-IMG's entities are WordNet 3.0 noun synsets (``n`` + the 8-digit offset of the synset in
``dict/data.noun``). A data.noun line reads ``offset lex_filenum ss_type w_cnt word lex_id ...
p_cnt ... | gloss`` (``w_cnt`` in hex, ``_`` for spaces in words; wndb(5WN)); lines starting
with two spaces are the licence header. :func:`entity_text` gives the TSV ``entity, name,
lemmas, definition`` (name: the first lemma; lemmas joined by ``|``; definition: the gloss as
written) in the order of the entities asked for, quoted as Python's csv writes a TSV: a field
holding a quote is wrapped in quotes, inner quotes doubled.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from vlkge.errors import InputError

COLUMNS = ("entity", "name", "lemmas", "definition")


def parse_synset(line: str) -> tuple[str, list[str], str]:
    """(offset, lemmas with spaces, gloss) of one data.noun line."""
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    count = int(fields[3], 16)
    lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
    return fields[0], lemmas, gloss.rstrip()


def noun_synsets(data_noun: str | Path, offsets: set[str]) -> dict[str, tuple[list[str], str]]:
    """Offset → (lemmas, gloss) for the synsets of ``data_noun`` among ``offsets``."""
    found: dict[str, tuple[list[str], str]] = {}
    path = Path(data_noun)
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.startswith("  ") or line[:8] not in offsets:
                    continue
                try:
                    offset, lemmas, gloss = parse_synset(line)
                except (IndexError, ValueError):
                    raise InputError(
                        "not a WordNet data.noun synset line",
                        path=path,
                        line=number,
                        hint="give the dict/data.noun file of WordNet 3.0",
                    ) from None
                found[offset] = (lemmas, gloss)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read WordNet data ({exc})", path=path) from None
    return found


def entity_text(data_noun: str | Path, entities: Sequence[str]) -> str:
    """The entity text TSV (header and one row per entity, in the order given)."""
    synsets = noun_synsets(data_noun, {e[1:] for e in entities})
    missing = [e for e in entities if e[1:] not in synsets]
    if missing:
        raise InputError(
            f"{len(missing)} entit(ies) have no synset in WordNet's data.noun (first: {missing[0]!r})",
            path=data_noun,
            hint="entities are WordNet 3.0 noun synsets, n + offset: give WordNet 3.0's dict/data.noun",
        )
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(COLUMNS)
    for entity in entities:
        lemmas, gloss = synsets[entity[1:]]
        writer.writerow((entity, lemmas[0], "|".join(lemmas), gloss))
    return out.getvalue()
