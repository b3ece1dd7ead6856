"""Prices: an amount and an ISO 4217 currency out of a price text, with hints.

The text is read by `price-parser <https://github.com/scrapinghub/price-parser>`_ (amount,
decimal and thousands separators, the currency sign as written); this module only adds

* **hints**: a currency known from a more specific source (schema.org ``priceCurrency``, a
  recipe's or a CSV's currency, OpenGraph ``product:price:currency``) wins over the text; a
  locale (``de-DE``, ``en_AU``) or country gives the decimal separator of an ambiguous amount
  (``1,299``) and resolves ambiguous signs (``$``, ``kr``, ``¥``, ``Rs``);
* **ISO codes**: the sign or word found is mapped to an ISO 4217 code (``R$`` -> BRL,
  ``zł`` -> PLN); an ambiguous one without a hint is no currency (``$`` is not assumed to
  be USD), and only real ISO codes count as codes (``40% OFF``, ``Inc GST`` have none);
* the **current price** of ``Was £40 Now £20`` (the part after "now");
* **thousands by the minor unit**: one separator followed by exactly three digits
  (``1.299 kr``, ``Rp 31.500``, ``1,299 €``) is a thousands separator when the currency's
  minor unit (ISO 4217: 0 or 2 decimals for all but six dinars and the Omani rial) leaves no
  third decimal, whatever the locale says; with a three-decimal currency (``KWD 12.500``) or
  no known currency (``12.500``) the locale decides, as for any amount.

``parse_price("1.299 €") == (1299.0, "EUR")``; ``parse_price("$19.90") == (19.9, None)``;
``parse_price("$19.90", country="AU") == (19.9, "AUD")``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from price_parser import Price

#: Active ISO 4217 codes (2026), plus the few replaced ones still seen on old pages.
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
BYN BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES
KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR
MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB
RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY
TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL
""".split())

#: Minor units (digits after the decimal separator) that are not 2, from the ISO 4217 code
#: list (column "Minor unit"); every other code in ``ISO_4217`` has 2.
MINOR_UNITS = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
}

#: Signs and words that name one currency (keys lower-case, without a trailing dot).
SIGNS = {
    "€": "EUR", "euro": "EUR", "£": "GBP", "r$": "BRL", "a$": "AUD", "au$": "AUD", "c$": "CAD",
    "ca$": "CAD", "hk$": "HKD", "nz$": "NZD", "us$": "USD", "s$": "SGD", "mx$": "MXN",
    "nt$": "TWD", "kč": "CZK", "zł": "PLN", "zl": "PLN", "rp": "IDR", "lei": "RON", "leu": "RON",
    "₫": "VND", "đ": "VND", "ft": "HUF", "tl": "TRY", "₺": "TRY", "руб": "RUB", "₽": "RUB",
    "₹": "INR", "₩": "KRW", "₪": "ILS", "฿": "THB", "₱": "PHP", "₴": "UAH", "грн": "UAH",
    "лв": "BGN", "fr": "CHF", "₦": "NGN", "gh₵": "GHS", "₸": "KZT", "₼": "AZN", "₾": "GEL",
    "￥": "JPY", "cn¥": "CNY", "元": "CNY", "円": "JPY",
}
#: Signs several currencies use: the shop's country picks one, else the default (None: none).
AMBIGUOUS: dict[str, tuple[dict[str, str], str | None]] = {
    "$": ({"US": "USD", "EC": "USD", "SV": "USD", "PR": "USD", "PA": "USD", "CA": "CAD",
           "AU": "AUD", "NZ": "NZD", "HK": "HKD", "SG": "SGD", "MX": "MXN", "AR": "ARS",
           "CL": "CLP", "CO": "COP", "UY": "UYU", "TW": "TWD", "JM": "JMD", "TT": "TTD",
           "BS": "BSD", "BB": "BBD", "FJ": "FJD", "NA": "NAD", "BN": "BND", "BZ": "BZD",
           "DO": "DOP"}, None),
    "kr": ({"SE": "SEK", "NO": "NOK", "DK": "DKK", "FO": "DKK", "GL": "DKK", "IS": "ISK"}, None),
    "¥": ({"CN": "CNY", "JP": "JPY"}, "JPY"),
    "rs": ({"IN": "INR", "PK": "PKR", "LK": "LKR", "NP": "NPR", "MU": "MUR"}, None),
}
#: Languages whose decimal separator is a comma, and countries that differ from their language.
COMMA_LANGUAGES = frozenset("""
az be bg bs ca cs da de el es et eu fi fr gl hr hu id is it kk lt lv mk nb nl nn no pl pt ro
ru sk sl sq sr sv tr uk vi
""".split())
DOT_COUNTRIES = frozenset({"CH", "LI", "MX", "GT", "HN", "NI", "SV", "PA", "DO", "PR", "PE"})
_LOCALE = re.compile(r"^([A-Za-z]{2,3})(?:[-_](?:[A-Za-z]{4}[-_])?([A-Za-z]{2}|\d{3}))?\b")
_PLAIN = re.compile(r"\d+(?:\.\d+)?")
_ONE_GROUP = re.compile(r"\d{1,3}[.,]\d{3}")   # 1.299, 31.500, 1,299: one separator, three digits
#: Typographic apostrophes, Swiss thousands separators (1’299.50), as price-parser knows them.
_APOSTROPHES = str.maketrans("\u2019\u02bc\u2032", "'" * 3)
_NOW = re.compile(r"\bnow\b(?=.*\d)", re.IGNORECASE | re.DOTALL)


def locale_hints(locale: str | None) -> tuple[str | None, str | None]:
    """(decimal separator, country) of a locale: ``de-DE`` -> (",", "DE"), ``en`` -> (".", None)."""
    m = _LOCALE.match((locale or "").strip())
    if not m:
        return None, None
    lang, region = m.group(1).lower(), (m.group(2) or "").upper() or None
    if region in DOT_COUNTRIES:
        return ".", region
    return ("," if lang in COMMA_LANGUAGES else "."), region


def currency_code(sign: str | None, country: str | None = None) -> str | None:
    """The ISO 4217 code a currency sign, word or code stands for (None: unknown or ambiguous)."""
    s = (sign or "").strip()
    if not s:
        return None
    if s.upper() in ISO_4217 and s.isalpha():
        return s.upper()
    key = s.lower().rstrip(".")
    if key in SIGNS:
        return SIGNS[key]
    by_country, default = AMBIGUOUS.get(key, ({}, None))
    return by_country.get((country or "").upper(), default)


def minor_unit(code: str | None) -> int | None:
    """Decimals of an ISO 4217 currency (``JPY`` 0, ``EUR`` 2, ``KWD`` 3); None: not a code."""
    return MINOR_UNITS.get(code, 2) if code in ISO_4217 else None


def _minor_units(code: str | None, signs: tuple[str | None, ...]) -> set[int]:
    """The minor units the amount's currency may have: its currency's, else those of every
    currency an ambiguous sign can stand for (``kr``: SEK, NOK, DKK 2, ISK 0), else none."""
    if code:
        unit = minor_unit(code)
        return set() if unit is None else {unit}
    for sign in signs:
        key = (sign or "").strip().lower().rstrip(".")
        if key in AMBIGUOUS:
            by_country, default = AMBIGUOUS[key]
            return {MINOR_UNITS.get(c, 2) for c in (*by_country.values(), default) if c}
    return set()


def current_price_text(text: str) -> str:
    """``Was £40 Now £20`` -> ``£20``: a price list's last "now" part is the price to pay."""
    parts = _NOW.split(text)
    return parts[-1] if len(parts) > 1 else text


def _amount(price: Price, text: str, decimal: str | None, minor_units: set[int]) -> float | None:
    """The amount of ``text``, as price-parser reads it (``price``), with two hints:

    * one separator followed by exactly three digits, in a currency whose minor unit is not 3
      (``minor_units``: those its currency may have), is a thousands separator: ``1.299 kr``
      cannot be 1.299 crowns (two decimals at most), nor ``Rp 31.500`` 31.5 rupiah;
    * else ``decimal`` is used where the text fits it (one such separator, and the last one),
      so that it settles ``1,299`` but never breaks ``19.90``.
    """
    if not re.search(r"\d", text):
        return None                   # price-parser reads "free" as 0: not a price here
    found = price.amount_text or ""
    if _ONE_GROUP.fullmatch(found) and minor_units and 3 not in minor_units:
        price = Price.fromstring(text, decimal_separator="," if "." in found else ".")
    elif decimal and found.count(decimal) == 1 and found.rfind(decimal) == max(found.rfind(","), found.rfind(".")):
        price = Price.fromstring(text, decimal_separator=decimal)
    if price.amount is None:
        return None
    value = float(price.amount)
    return value if math.isfinite(value) and value >= 0 else None


def parse_price(raw: Any, currency: str | None = None, *, locale: str | None = None,
                decimal: str | None = None, country: str | None = None,
                plain_numbers: bool = False) -> tuple[float | None, str | None]:
    """(amount, ISO currency) of a price text or number.

    ``currency``: a currency known from a more specific source than the text (a code or sign;
    it wins when it names a currency). ``locale`` gives ``decimal`` and ``country`` unless
    they are given. ``plain_numbers``: a bare ``1.299`` is the number programs write (a CSV
    export, the scraper's own catalog.csv), not 1299. Amounts are finite and >= 0, else None.
    """
    loc_decimal, loc_country = locale_hints(locale)
    decimal, country = decimal or loc_decimal, (country or loc_country or "").upper() or None
    hinted = currency_code(currency, country)
    if raw is None or isinstance(raw, bool):
        return None, hinted
    if isinstance(raw, (int, float)):
        return (float(raw) if math.isfinite(raw) and raw >= 0 else None), hinted
    text = re.sub(r"\s+", " ", str(raw)).strip().translate(_APOSTROPHES)
    if not text:
        return None, hinted
    text = current_price_text(text)
    price = Price.fromstring(text)
    code = hinted or currency_code(price.currency, country)
    if plain_numbers and _PLAIN.fullmatch(text):
        amount: float | None = float(text)
    else:
        amount = _amount(price, text, decimal, _minor_units(code, (currency, price.currency)))
    return amount, code
