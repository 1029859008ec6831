"""Reading a WikiArt scrape: its layout, the artwork and artist CSVs, crawled images.

:func:`load_artworks` and :func:`load_artists` give one clean row per artwork URL and per artist
slug and count what the scrape got wrong in ``bad`` (see the package docstring).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from vlkge.pipeline.dates import death_year_of, year_bin, year_of

from vlkge.errors import InputError, SourceError

ARTWORK_DIR = "artwork_data"
ARTIST_FILES = ("artist_data_new.csv", "artist_data.csv")
RAW_ARTISTS = "artist_data.csv"
RAW_IMAGES = "images"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
URL_PATTERN = r"/en/([^/?#]+)/([^/?#]+)/?$"
PLACEHOLDER_IMAGE = "/Content/images/"  # WikiArt's shared "no image" frame
ARTWORK_COLUMNS = ("url", "create date", "date", "image_url", "style", "genre", "media", "location")
ARTWORK_COLUMNS += ("tags", "series")
ARTIST_COLUMNS = ("name", "url_name", "birth date", "death date", "birth place", "death place")
ARTIST_COLUMNS += ("nationality", "art movement", "field", "painting school", "art institution")
ARTIST_COLUMNS += ("influenced by", "influenced on", "pupils", "teachers", "friends and co-workers")


def find_scrape(src: Path) -> tuple[Path, Path]:
    """(artwork_data directory, artist CSV) under ``src`` or one of its sub-folders."""
    for folder in [src, *sorted(p for p in src.iterdir() if p.is_dir())]:
        artists = next((folder / n for n in ARTIST_FILES if (folder / n).is_file()), None)
        if artists is not None and (folder / ARTWORK_DIR).is_dir():
            return folder / ARTWORK_DIR, artists
    raise SourceError(
        f"no WikiArt scrape here (need {ARTWORK_DIR}/*.csv and {ARTIST_FILES[0]})",
        path=src,
        hint="point --source at the scrape folder (e.g. wikiart_scrape_yangyuwang) or its parent",
    )


def image_artwork(rel: Path, keys: set[str], titles: dict[str, str]) -> str | None:
    """The artwork key (``artist/title``) an image path belongs to, else None.

    ``artist/title.jpg`` (the key), ``Style/artist_title.jpg`` (WikiArt refined) or
    ``title.jpg`` when exactly one artwork has that title slug.
    """
    stem_key = rel.with_suffix("").as_posix()
    if stem_key in keys:
        return stem_key
    if len(rel.parts) >= 2 and f"{rel.parts[-2]}/{rel.stem}" in keys:
        return f"{rel.parts[-2]}/{rel.stem}"
    if "_" in rel.stem:
        artist, title = rel.stem.split("_", 1)
        if f"{artist}/{title}" in keys:
            return f"{artist}/{title}"
    return titles.get(rel.stem)


def artwork_keys(artwork_dir: Path) -> pl.DataFrame:
    """Distinct (key, artist, title) of the artwork CSVs."""
    frame = read_artworks(sorted(artwork_dir.glob("*.csv"))).select("url").collect()
    parts = frame.select(pl.col("url").str.extract_groups(URL_PATTERN).alias("p")).unnest("p")
    parts = parts.rename({parts.columns[0]: "artist", parts.columns[1]: "title"}).drop_nulls()
    return parts.unique().with_columns(key=pl.concat_str("artist", pl.lit("/"), "title"))


def _scan(path: Path, columns: tuple[str, ...]) -> pl.LazyFrame:
    """One CSV as strings, headers lower-cased, exactly ``columns`` (absent ones null)."""
    try:
        lf = pl.scan_csv(path, infer_schema=False, quote_char='"', truncate_ragged_lines=True)
        names = lf.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"unreadable CSV ({exc})", path=path) from None
    lower = {n: n.strip().lower() for n in names}
    lf = lf.rename(lower).with_columns(pl.lit(path.name).alias("_file"))
    have = set(lower.values())
    return lf.select(
        *(pl.col(c).str.strip_chars() if c in have else pl.lit(None, pl.String).alias(c) for c in columns),
        "_file",
    ).with_row_index("_line", offset=2)


def read_artworks(paths: list[Path]) -> pl.LazyFrame:
    """All artwork CSVs as one lazy string table (file order), with ``_file``/``_line``."""
    if not paths:
        return pl.LazyFrame(schema={c: pl.String for c in ARTWORK_COLUMNS})
    return pl.concat([_scan(p, ARTWORK_COLUMNS) for p in paths], how="vertical")


def read_artists(path: Path) -> pl.LazyFrame:
    return _scan(path, ARTIST_COLUMNS)


def image_table(images: list[str], raw_dir: Path, bad: dict[str, int]) -> pl.DataFrame:
    """(key, images) for crawled images that open; paths relative to ``data/<ds>/``."""
    from PIL import Image, UnidentifiedImageError

    rows: list[tuple[str, str]] = []
    broken = 0
    for rel in sorted(images):
        parts = Path(rel).parts
        if len(parts) < 4:
            continue
        try:
            with Image.open(raw_dir / rel) as img:
                img.verify()
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
            broken += 1
            continue
        rows.append((f"artwork:{parts[1]}/{parts[2]}", f"{raw_dir.name}/{rel}"))
    bad["images_that_do_not_open"] = broken
    frame = pl.DataFrame(rows, schema={"key": pl.String, "image": pl.String}, orient="row")
    return frame.group_by("key", maintain_order=True).agg(pl.col("image").alias("images"))


def load_artworks(paths: list[Path], year_bin_width: int, bad: dict[str, Any]) -> pl.DataFrame:
    """One row per artwork URL and one URL per image, with ``key``, ``artist``, ``_title`` and the
    binned creation year ``_year``; rows dropped on the way are counted in ``bad``."""
    rows = read_artworks(paths).collect()
    bad["rows"] = rows.height
    bad["rows_without_url"] = rows.filter(pl.col("url").is_null() | (pl.col("url") == "")).height
    rows = rows.filter(pl.col("url").is_not_null() & (pl.col("url") != ""))
    bad["duplicate_url_rows"] = rows.height - rows["url"].n_unique()
    rows = rows.unique("url", keep="first", maintain_order=True)
    real_image = pl.col("image_url").is_not_null() & ~pl.col("image_url").str.contains(PLACEHOLDER_IMAGE)
    seen_image = rows.filter(real_image).sort("url").with_columns(_dup=pl.col("image_url").is_duplicated())
    dup_urls = seen_image.filter(pl.col("_dup") & ~pl.col("image_url").is_first_distinct())
    bad["same_image_under_two_urls"] = dup_urls.height
    rows = rows.join(dup_urls.select("url"), on="url", how="anti", maintain_order="left")
    parts = pl.col("url").str.extract_groups(URL_PATTERN)
    art = rows.lazy().with_columns(
        _artist=parts.struct.field("1"),
        _title=parts.struct.field("2"),
    )
    art = art.with_columns(
        key=pl.concat_str(
            pl.lit("artwork:"),
            pl.when(pl.col("_artist").is_not_null())
            .then(pl.concat_str("_artist", pl.lit("/"), "_title"))
            .otherwise(pl.col("url")),
        ),
        artist=pl.col("_artist"),
        _year=pl.coalesce(
            year_of(pl.col("create date")),
            year_of(pl.col("date").str.split("|").list.first().str.split(";").list.first()),
        ),
    ).collect()
    bad["artworks_without_artist"] = art.filter(pl.col("artist").is_null()).height
    has_date = pl.col("create date").is_not_null() | pl.col("date").is_not_null()
    bad["unparsable_artwork_dates"] = art.filter(has_date & pl.col("_year").is_null()).height
    return art.with_columns(_year=year_bin(pl.col("_year"), year_bin_width))


def load_artists(path: Path, life_bin_width: int, bad: dict[str, Any]) -> pl.DataFrame:
    """One row per artist slug with ``key`` and binned birth and death years (``_birth``,
    ``_death``); rows dropped and dates not understood are counted in ``bad``."""
    artists = read_artists(path).collect()
    artists = artists.with_columns(slug=pl.col("url_name").str.replace(r"^en/", "").str.strip_chars("/"))
    bad["artist_rows_without_slug"] = artists.filter(pl.col("slug").is_null() | (pl.col("slug") == "")).height
    artists = artists.filter(pl.col("slug").is_not_null() & (pl.col("slug") != ""))
    bad["duplicate_artist_rows"] = artists.height - artists["slug"].n_unique()
    artists = artists.unique("slug", keep="first", maintain_order=True)
    artists = artists.with_columns(
        key=pl.concat_str(pl.lit("artist:"), "slug"), _b=year_of(pl.col("birth date"))
    )
    artists = artists.with_columns(_d=death_year_of(pl.col("death date"), pl.col("_b")))
    bad["unparsable_artist_dates"] = artists.filter(
        (pl.col("birth date").is_not_null() & pl.col("_b").is_null())
        | (pl.col("death date").is_not_null() & pl.col("_d").is_null())
    ).height
    return artists.with_columns(
        _birth=year_bin(pl.col("_b"), life_bin_width), _death=year_bin(pl.col("_d"), life_bin_width)
    )
