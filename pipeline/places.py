"""Places → countries: the last comma-separated part of a place, when it names a country.

``"Louvre, Paris, France"`` → ``France``; ``"MoMA, New York City, NY, US"`` → ``United States``;
``"Private Collection"`` → null (not derivable). Aliases (``US``, ``UK``, ``USSR``…) map to one
name; anything else is null and counted by the caller.
"""

from __future__ import annotations

import polars as pl

COUNTRIES: frozenset[str] = frozenset(
    """Afghanistan|Albania|Algeria|Andorra|Angola|Argentina|Armenia|Australia|Austria|Azerbaijan|
    Bahamas|Bahrain|Bangladesh|Barbados|Belarus|Belgium|Belize|Benin|Bhutan|Bolivia|
    Bosnia and Herzegovina|Botswana|Brazil|Brunei|Bulgaria|Burkina Faso|Burundi|Cambodia|Cameroon|
    Canada|Cape Verde|Central African Republic|Chad|Chile|China|Colombia|Comoros|Congo|Costa Rica|
    Croatia|Cuba|Cyprus|Czech Republic|Democratic Republic of the Congo|Denmark|Djibouti|Dominica|
    Dominican Republic|Ecuador|Egypt|El Salvador|Equatorial Guinea|Eritrea|Estonia|Eswatini|
    Ethiopia|Fiji|Finland|France|Gabon|Gambia|Georgia|Germany|Ghana|Greece|Grenada|Guatemala|
    Guinea|Guinea-Bissau|Guyana|Haiti|Honduras|Hong Kong|Hungary|Iceland|India|Indonesia|Iran|Iraq|
    Ireland|Israel|Italy|Ivory Coast|Jamaica|Japan|Jordan|Kazakhstan|Kenya|Kosovo|Kuwait|
    Kyrgyzstan|Laos|Latvia|Lebanon|Lesotho|Liberia|Libya|Liechtenstein|Lithuania|Luxembourg|
    Madagascar|Malawi|Malaysia|Maldives|Mali|Malta|Mauritania|Mauritius|Mexico|Moldova|Monaco|
    Mongolia|Montenegro|Morocco|Mozambique|Myanmar|Namibia|Nepal|Netherlands|New Zealand|
    Nicaragua|Niger|Nigeria|North Korea|North Macedonia|Norway|Oman|Pakistan|Palestine|Panama|
    Papua New Guinea|Paraguay|Peru|Philippines|Poland|Portugal|Puerto Rico|Qatar|Romania|Russia|
    Rwanda|San Marino|Saudi Arabia|Senegal|Serbia|Seychelles|Sierra Leone|Singapore|Slovakia|
    Slovenia|Somalia|South Africa|South Korea|South Sudan|Spain|Sri Lanka|Sudan|Suriname|Sweden|
    Switzerland|Syria|Taiwan|Tajikistan|Tanzania|Thailand|Togo|Trinidad and Tobago|Tunisia|Turkey|
    Turkmenistan|Uganda|Ukraine|United Arab Emirates|United Kingdom|United States|Uruguay|
    Uzbekistan|Vatican|Venezuela|Vietnam|Yemen|Zambia|Zimbabwe""".replace("\n", "")
    .replace("    ", "")
    .split("|")
)

ALIASES: dict[str, str] = {
    "US": "United States",
    "USA": "United States",
    "U.S.": "United States",
    "U.S.A.": "United States",
    "United States of America": "United States",
    "UK": "United Kingdom",
    "U.K.": "United Kingdom",
    "England": "United Kingdom",
    "Scotland": "United Kingdom",
    "Wales": "United Kingdom",
    "Northern Ireland": "United Kingdom",
    "Great Britain": "United Kingdom",
    "Russian Federation": "Russia",
    "Czechia": "Czech Republic",
    "Holland": "Netherlands",
    "The Netherlands": "Netherlands",
    "Vatican City": "Vatican",
    "Holy See": "Vatican",
    "Republic of Korea": "South Korea",
    "Korea": "South Korea",
    "Macedonia": "North Macedonia",
    "Côte d'Ivoire": "Ivory Coast",
    "Swaziland": "Eswatini",
    "Burma": "Myanmar",
}


def country_of(place: pl.Expr) -> pl.Expr:
    """The country a place string names in its last comma-separated part, else null."""
    last = place.str.split(",").list.last().str.strip_chars().str.strip_chars(".")
    known = {**{c: c for c in COUNTRIES}, **ALIASES}
    return last.replace_strict(known, default=None, return_dtype=pl.String)
