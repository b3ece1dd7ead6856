"""Real-world price strings (issue 15) and what they mean, shared by the catalogue and scraper tests.

Each case: (price text, locale or None, amount, ISO currency or None). Without a hint, an
ambiguous sign ("$", "kr") gives no currency; with the shop's locale it gives the country's.
"""

PRICE_CASES = [
    # amounts the hand-written parser got wrong
    ("1.299 €", None, 1299.0, "EUR"),
    ("Rp 31.500", None, 31500.0, "IDR"),
    ("12.500 ₫", None, 12500.0, "VND"),
    ("$ 1.144.000", None, 1144000.0, None),
    ("CHF 1'049,95", None, 1049.95, "CHF"),
    (".75 €", None, 0.75, "EUR"),
    ("1.899,-", None, 1899.0, None),
    ("£20 30% off", None, 20.0, "GBP"),
    ("$59 30% off", None, 59.0, None),
    ("Was £40 Now £20", None, 20.0, "GBP"),
    # currencies it did not know
    ("1 299 Kč", None, 1299.0, "CZK"),
    ("49,99 zł", None, 49.99, "PLN"),
    ("199 kr", None, 199.0, None),
    ("129 lei", None, 129.0, "RON"),
    ("5 990 Ft", None, 5990.0, "HUF"),
    ("129,90 TL", None, 129.9, "TRY"),
    ("1 990 руб.", None, 1990.0, "RUB"),
    # dollars that are not US dollars
    ("R$ 89,90", None, 89.9, "BRL"),
    ("A$ 59.95", None, 59.95, "AUD"),
    ("C$ 45.00", None, 45.0, "CAD"),
    ("HK$ 399", None, 399.0, "HKD"),
    ("$1,190.00 AUD", None, 1190.0, "AUD"),
    ("NZD $100.70", None, 100.7, "NZD"),
    # upper-case words that are no currency
    ("40% OFF", None, None, None),
    ("$35.00 Inc GST", None, 35.0, None),
    # the shop's locale settles "$", "kr" and the decimal separator
    ("$ 1.144.000", "es-CL", 1144000.0, "CLP"),
    ("199 kr", "sv-SE", 199.0, "SEK"),
    ("$59 30% off", "en-US", 59.0, "USD"),
    ("$35.00 Inc GST", "en-AU", 35.0, "AUD"),
    ("12.500", "en-US", 12.5, None),
    ("1,299", "de-DE", 1.299, None),
    ("19.90 €", "de-DE", 19.9, "EUR"),
]
