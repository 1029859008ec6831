"""The WikiArt-MKG schema: relations, attribute columns, zero-shot prompts, the ``clean.wikiart`` spec.

Relation names are the VL-KGE paper's; see the package docstring for what each version builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vlkge.errors import ConfigError


@dataclass(frozen=True)
class Attribute:
    """One attribute relation: the source column, the attribute kind and how values are read.

    ``read``: ``list`` (``|``-separated values), ``country`` (place → country), ``year``
    (a binned year column computed beforehand).
    """

    relation: str
    column: str
    kind: str
    read: str = "list"


ARTWORK_ATTRIBUTES = (
    Attribute("isCreatedByArtist", "artist", "artist", "artist"),
    Attribute("hasStyle", "style", "style"),
    Attribute("belongsToGenre", "genre", "genre"),
    Attribute("isCreatedInYear", "_year", "year", "year"),
    Attribute("isCreatedWithMedium", "media", "medium"),
    Attribute("isAssociatedWithTag", "tags", "tag"),
    Attribute("isLocatedIn", "location", "country", "country"),
)
ARTIST_ATTRIBUTES = (
    Attribute("hasNationality", "nationality", "nationality"),
    Attribute("isAssociatedWithField", "field", "field"),
    Attribute("isAssociatedWithArtMovement", "art movement", "style"),
    Attribute("wasBornOnDate", "_birth", "date", "year"),
    Attribute("wasBornIn", "birth place", "country", "country"),
    Attribute("diedOnDate", "_death", "date", "year"),
    Attribute("diedIn", "death place", "country", "country"),
    Attribute("isMemberOfPaintingSchool", "painting school", "school"),
    Attribute("isAffiliatedWithArtInstitution", "art institution", "institution"),
)
# artist → artist: relation → column of artist names
ARTIST_LINKS = {
    "isInfluencedBy": "influenced by",
    "isInfluencedOn": "influenced on",
    "isPupilOf": "teachers",
    "isTeacherOf": "pupils",
}
SIMILARITY = ("isRelatedToArtwork", "isRelatedToArtist")
# Zero-shot prompts (``meta.json`` → ``prompts``; ``{}`` is the candidate tail's name).
PROMPTS = {
    "isCreatedByArtist": "This painting was created by {}.",
    "hasStyle": "This painting is in the style of {}.",
    "belongsToGenre": "This painting belongs to the genre {}.",
    "isCreatedInYear": "This painting was created in {}.",
    "isCreatedWithMedium": "This painting was made with {}.",
    "isAssociatedWithTag": "This painting shows {}.",
    "isLocatedIn": "This painting is located in {}.",
    "hasNationality": "This artist is {}.",
    "isAssociatedWithField": "This artist works in {}.",
    "isAssociatedWithArtMovement": "This artist belongs to the {} movement.",
    "wasBornOnDate": "This artist was born in {}.",
    "wasBornIn": "This artist was born in {}.",
    "diedOnDate": "This artist died in {}.",
    "diedIn": "This artist died in {}.",
    "isMemberOfPaintingSchool": "This artist is a member of the {}.",
    "isAffiliatedWithArtInstitution": "This artist studied at {}.",
    "isInfluencedBy": "This artist was influenced by {}.",
    "isInfluencedOn": "This artist influenced {}.",
    "isPupilOf": "This artist was a pupil of {}.",
    "isTeacherOf": "This artist was the teacher of {}.",
}
INVERSE = "hasCreatedArtwork"
V1_RELATIONS = ("isCreatedByArtist", "hasStyle", "isCreatedInYear", "isAssociatedWithTag")


def version_relations(dataset: str, spec: dict[str, Any]) -> list[str]:
    """The relations a version builds: ``clean.wikiart.relations`` when set, else its own."""
    if spec.get("relations"):
        wanted = list(spec["relations"])
        known = set(all_relations())
        unknown = [r for r in wanted if r not in known]
        if unknown:
            raise ConfigError(
                f"unknown relation(s) {unknown}",
                key="clean.wikiart.relations",
                hint=f"choose from: {', '.join(all_relations())}",
            )
        return wanted
    if dataset.endswith("v1"):
        return list(V1_RELATIONS)
    rels = [a.relation for a in (*ARTWORK_ATTRIBUTES, *ARTIST_ATTRIBUTES)] + list(ARTIST_LINKS)
    if spec.get("similarity", True):
        rels += list(SIMILARITY)
    if spec.get("inverse", False):
        rels.append(INVERSE)
    return rels


def all_relations() -> list[str]:
    return [a.relation for a in (*ARTWORK_ATTRIBUTES, *ARTIST_ATTRIBUTES)] + [
        *ARTIST_LINKS,
        *SIMILARITY,
        INVERSE,
    ]


def wikiart_spec(params: dict[str, Any]) -> dict[str, Any]:
    """``clean.wikiart`` with its values checked."""
    spec = dict((params.get("clean", {}) or {}).get("wikiart", {}) or {})
    defaults = {
        "min_count": 10,
        "year_bin": 10,
        "life_bin": 50,
        "valid_fraction": 0.1,
        "test_fraction": 0.1,
        "similarity": True,
        "inverse": False,
        "artwork_text": False,
        "relations": None,
        "downsampling": {"isRelatedToArtwork": 0.001},
    }
    spec = {**defaults, **{k: v for k, v in spec.items() if v is not None}}
    for key in ("min_count", "year_bin", "life_bin"):
        if int(spec[key]) < 1:
            raise ConfigError(f"must be >= 1, got {spec[key]!r}", key=f"clean.wikiart.{key}")
    valid, test = float(spec["valid_fraction"]), float(spec["test_fraction"])
    if valid < 0 or test < 0 or valid + test >= 1:
        raise ConfigError(
            f"valid_fraction {valid} and test_fraction {test} must be >= 0 and sum below 1",
            key="clean.wikiart",
        )
    return spec
