import csv

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dressfinder.catalog import CatalogDB, Filters, Product, read_catalog
from dressfinder.errors import CatalogError
from dressfinder.prices import currency_code, locale_hints, minor_unit, parse_price

from conftest import dress_image
from price_cases import PRICE_CASES


def test_folder_ids_are_posix_relative_paths(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    dress_image(1).save(tmp_path / "a" / "b" / "x.JPG")
    dress_image(2).save(tmp_path / "top.png")
    (tmp_path / "notes.txt").write_text("not an image")
    rep = read_catalog(tmp_path)
    assert [p.id for p in rep.products] == ["a/b/x.JPG", "top.png"]
    assert all(p.image.startswith(str(tmp_path.resolve())) for p in rep.products)


def test_csv_with_synonyms_relative_and_absolute_paths(tmp_path):
    dress_image(1).save(tmp_path / "one.jpg")
    other = tmp_path / "elsewhere"
    other.mkdir()
    dress_image(2).save(other / "two.jpg")
    (tmp_path / "c.csv").write_text(
        "product_id,image,name,price,product_url,shop,colour,pattern\n"
        f"p1,one.jpg,Red dress,$19.90,https://x/1,Shop,red,plain\n"
        f"p2,{other / 'two.jpg'},Blue dress,\"1.299,00 €\",https://x/2,Shop,blue,\n")
    rep = read_catalog(tmp_path / "c.csv")
    p1, p2 = rep.products
    # "$" alone is no currency (issue 15: it was taken for USD; a CSV says which with a currency column)
    assert (p1.id, p1.title, p1.price, p1.currency, p1.url, p1.shop) == ("p1", "Red dress", 19.9, None, "https://x/1", "Shop")
    assert p1.image == str(tmp_path.resolve() / "one.jpg")
    assert p1.color == "red"                  # "colour" is the color field's synonym
    assert p1.extra == {"pattern": "plain"}   # other columns are extras
    assert (p2.price, p2.currency, p2.image) == (1299.0, "EUR", str(other / "two.jpg"))


def test_csv_skips_bad_rows_with_reasons(tmp_path):
    (tmp_path / "c.csv").write_text("id,image\n,a.jpg\nx,\nx,b.jpg\nx,c.jpg\ny,https://cdn/x.jpg\n")
    rep = read_catalog(tmp_path / "c.csv")
    assert [p.id for p in rep.products] == ["x"]
    reasons = [r for _, r in rep.skipped]
    assert reasons[0] == "no id" and reasons[1] == "no image"
    assert "duplicate id" in reasons[2] and "URL" in reasons[3]


def test_csv_missing_columns_and_missing_file(tmp_path):
    (tmp_path / "c.csv").write_text("title,price\nA,1\n")
    with pytest.raises(CatalogError, match="missing id,image"):
        read_catalog(tmp_path / "c.csv")
    with pytest.raises(CatalogError, match="no such catalogue"):
        read_catalog(tmp_path / "nope.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(CatalogError):
        read_catalog(tmp_path / "x.json")


@pytest.mark.parametrize("text,expected", [
    ("$19.90", (19.9, None)), ("19,90 €", (19.9, "EUR")), ("£1,299.50", (1299.5, "GBP")),
    ("EUR 10", (10.0, "EUR")), ("12", (12.0, None)), ("", (None, None)), ("free", (None, None)),
    (float("nan"), (None, None)), (-3, (None, None)),
])
def test_parse_price(text, expected):
    assert parse_price(text) == expected


@pytest.mark.parametrize("text,locale,amount,currency", PRICE_CASES)
def test_parse_price_real_world_strings(text, locale, amount, currency):
    assert parse_price(text, locale=locale) == (amount, currency)


def test_a_known_currency_wins_over_the_text():
    assert parse_price("$19.90", "AUD") == (19.9, "AUD")
    assert parse_price("€ 10", "gbp") == (10.0, "GBP")          # the more specific source wins
    assert parse_price("$19.90", "$", country="CA") == (19.9, "CAD")
    assert parse_price("$19.90", "dollars") == (19.9, None)     # a hint naming nothing is ignored
    assert parse_price("£5", "XYZ") == (5.0, "GBP")
    assert parse_price("", "EUR") == (None, "EUR") and parse_price(None, "usd") == (None, "USD")
    assert parse_price("free") == (None, None)                   # not a price of 0
    assert parse_price("1,299", decimal=".") == (1299.0, None)
    assert parse_price("1,299", decimal=",") == (1.299, None)
    assert parse_price("19.90", decimal=",") == (19.9, None)     # a hint that does not fit is not used


def test_three_digits_after_the_only_separator_by_the_currencys_minor_unit():
    # The currency may come from the data (schema.org priceCurrency, read with decimal=".")...
    assert parse_price("31.500", "IDR", decimal=".") == (31500.0, "IDR")
    assert parse_price("1.299", "NOK", decimal=".") == (1299.0, "NOK")
    assert parse_price("12.500", "KWD", decimal=".") == (12.5, "KWD")       # three decimals: as given
    assert parse_price("12.500", "KWD", decimal=",") == (12500.0, "KWD")
    # ... or a sign and the country; an ambiguous sign alone is enough when none of its
    # currencies has a third decimal; no currency at all leaves the locale to decide.
    assert parse_price("1.299 kr", country="NO") == (1299.0, "NOK")
    assert parse_price("1.299", "kr", locale="en-DK") == (1299.0, "DKK")
    assert parse_price("$ 1.250", decimal=".") == (1250.0, None)
    assert parse_price("1.299", locale="en-DK") == (1.299, None)
    # not one group of three: the rule does not apply
    assert parse_price("1.5 kr", locale="sv-SE") == (1.5, "SEK")
    assert parse_price("1234.567 €", decimal=".") == (1234.567, "EUR")
    assert parse_price("1.299", "EUR", plain_numbers=True) == (1.299, "EUR")   # a program's number
    assert [minor_unit(c) for c in ("JPY", "IDR", "EUR", "KWD", "XYZ", None)] == [0, 2, 2, 3, None, None]


def test_currency_codes_and_locales():
    assert [currency_code(s) for s in ("eur", "OFF", "GST", "Kč", "kr", "kr.", "¥", "Fr.", "US$")] == [
        "EUR", None, None, "CZK", None, None, "JPY", "CHF", "USD"]
    assert [currency_code(s, "NO") for s in ("kr", "$")] == ["NOK", None]
    assert currency_code("¥", "CN") == "CNY" and currency_code("Rs", "PK") == "PKR"
    assert locale_hints("de-DE") == (",", "DE") and locale_hints("de_CH") == (".", "CH")
    assert locale_hints("en") == (".", None) and locale_hints("zh-Hant-TW") == (".", "TW")
    assert locale_hints("") == (None, None) and locale_hints("!!") == (None, None)


def test_csv_import_reads_real_world_prices(tmp_path):
    cases = [c for c in PRICE_CASES if c[1] is None]
    dress_image(1).save(tmp_path / "d.jpg")
    with open(tmp_path / "c.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "image", "price", "currency"])
        w.writerows([f"p{i}", "d.jpg", text, ""] for i, (text, _, _, _) in enumerate(cases))
        w.writerow(["aud", "d.jpg", "$19.90", "AUD"])     # the CSV's currency column wins
        w.writerow(["usd", "d.jpg", "$59 30% off", "usd"])
        w.writerow(["none", "d.jpg", "", "EUR"])
        w.writerow(["plain", "d.jpg", "1.299", ""])       # a number as programs write it
    products = {p.id: p for p in read_catalog(tmp_path / "c.csv").products}
    for i, (text, _, amount, currency) in enumerate(cases):
        assert (products[f"p{i}"].price, products[f"p{i}"].currency) == (amount, currency), text
    assert [(products[k].price, products[k].currency) for k in ("aud", "usd", "none", "plain")] == [
        (19.9, "AUD"), (59.0, "USD"), (None, "EUR"), (1.299, None)]


def test_db_insert_filters_delete(tmp_path):
    db = CatalogDB(tmp_path / "c.sqlite")
    prods = [Product(id=f"p{i}", image=f"{i}.jpg", price=float(i), shop="A" if i % 2 else "B",
                     category="maxi" if i < 3 else "mini", extra={"k": i}) for i in range(6)]
    db.insert((i, p, f"f{i}.jpg") for i, p in enumerate(prods))
    assert db.count() == 6 and db.max_row() == 5
    assert db.get("p3")[1].extra == {"k": 3} and db.get("p3")[2] == "f3.jpg"
    assert db.rows(Filters(min_price=2, max_price=4)).tolist() == [2, 3, 4]
    assert db.rows(Filters(shop="a")).tolist() == [1, 3, 5]  # case-insensitive
    assert db.rows(Filters(category="maxi", shop="B")).tolist() == [0, 2]
    assert db.delete(["p1", "nope"]) == [1]
    assert db.get("p1") is None and db.count() == 5
    assert db.facets() == {"shop": ["A", "B"], "category": ["maxi", "mini"], "availability": [], "brand": []}
    with pytest.raises(Exception):
        db.insert([(9, Product(id="p0"), None)])  # ids are unique
    assert db.count() == 5


def test_csv_reads_availability_sale_price_brand_variants_and_more_images(tmp_path):
    dress_image(1).save(tmp_path / "d.jpg")
    (tmp_path / "c.csv").write_text(
        "id,image_link,price,sale_price,currency,stock_status,vendor,colour,size,item_group_id,additional_image_link\n"
        "a,d.jpg,49.99,39.99,USD,https://schema.org/InStock,Maison,red,M,g1,images/x.jpg https://cdn/y.jpg\n"
        "b,d.jpg,49.99 USD,,,OutOfStock,Maison,red,L,g1,\n"
        "c,d.jpg,10,,JPY,false,,,,,\n"
        "d,d.jpg,10,,JPY,in the warehouse,,,,,\n")
    a, b, c, d = read_catalog(tmp_path / "c.csv").products
    assert (a.price, a.sale_price, a.currency, a.availability, a.brand, a.color, a.size, a.item_group_id) == (
        49.99, 39.99, "USD", "in_stock", "Maison", "red", "M", "g1")
    assert a.more_images == f"{tmp_path.resolve() / 'images/x.jpg'} https://cdn/y.jpg"   # paths resolved as image
    assert (b.price, b.currency, b.availability, b.item_group_id, b.more_images) == (49.99, "USD", "out_of_stock", "g1", None)
    assert (c.availability, c.currency) == ("out_of_stock", "JPY")                     # a shop's boolean
    assert d.availability is None and d.extra == {"availability": "in the warehouse"}  # not understood: kept


def test_db_new_fields_filters_and_tables_of_older_stores(tmp_path):
    """A table written before availability, brand... were declared still opens (read-only: they read
    as NULL) and gets the columns added on its next change; the new facets filter."""
    import sqlite3

    old = tmp_path / "old.sqlite"
    con = sqlite3.connect(old)
    con.executescript("CREATE TABLE products (row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, image TEXT, "
                      "title TEXT, price REAL, currency TEXT, url TEXT, store TEXT, category TEXT, file TEXT, "
                      "extra TEXT);"
                      "INSERT INTO products VALUES (0, 'p0', '0.jpg', 'T', 1.0, 'EUR', NULL, 'S', 'maxi', 'f0', NULL);")
    con.commit()
    con.close()
    with CatalogDB(old, readonly=True) as db:
        row, p, file = db.get("p0")
        assert (p.shop, p.availability, p.brand, p.sale_price) == ("S", None, None, None)
        assert db.rows(Filters(availability="in_stock")).tolist() == []
        assert db.facets()["brand"] == []
    with CatalogDB(old) as db:     # a writer: store renamed to shop, the new columns added
        db.insert([(1, Product(id="p1", image="1.jpg", availability="out_of_stock", brand="B", sale_price=2.0), "f1")])
        assert db.get("p1")[1].sale_price == 2.0
        assert db.rows(Filters(availability="OUT_OF_STOCK")).tolist() == [1]
        assert db.rows(Filters(brand="b", availability="out_of_stock")).tolist() == [1]
        assert db.facets()["availability"] == ["out_of_stock"]
    with CatalogDB(old, readonly=True) as db:
        assert [p.id for _, p, _ in db.iter_products()] == ["p0", "p1"]


cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.lists(st.sampled_from(["id", "image", "title", "price", "url", "x", "", "id"]), min_size=1, max_size=6),
       rows=st.lists(st.lists(cells, max_size=7), max_size=8),
       raw=st.binary(max_size=200))
def test_fuzz_csv_reader(tmp_path, header, rows, raw):
    """Any CSV (or garbage bytes): a report of products + skips, or one CatalogError; never a crash."""
    path = tmp_path / "fuzz.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    for candidate in (path, tmp_path / "raw.csv"):
        if candidate.name == "raw.csv":
            candidate.write_bytes(raw)
        try:
            rep = read_catalog(candidate)
        except CatalogError:
            continue
        ids = [p.id for p in rep.products]
        assert len(ids) == len(set(ids))
        assert all(p.id and p.image for p in rep.products)
        assert all(p.price is None or (np.isfinite(p.price) and p.price >= 0) for p in rep.products)


@pytest.mark.parametrize("pid,title", [
    ("deepfashion-dresses/Watercolor_Ikat_High-Low_Dress/img_00000051.jpg", "Watercolor Ikat High-Low Dress"),
    ("images/blue_summer-dress_01.jpg", "Blue Summer Dress"),        # a generic folder: the file name
    ("Red Maxi Dress.png", "Red Maxi Dress"),
    ("images/img_0001.jpg", "images/img_0001.jpg"),                   # nothing to read: the id
    ("SKU-12345", "SKU-12345"),                                       # a shop's own id, not a file
])
def test_display_title_from_file_or_folder_name(pid, title):
    from dressfinder.catalog import Product, display_title

    assert display_title(Product(id=pid)) == title
    assert display_title(Product(id=pid, title="Given")) == "Given"
