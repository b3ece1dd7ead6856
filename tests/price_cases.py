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
    # one separator and three digits, in a currency with no third decimal (ISO 4217 minor unit
    # 0 or 2), is a thousands separator whatever the locale (read as decimals before: 1.299 kr)
    ("1.299 kr", "en", 1299.0, None),               # SEK, NOK, DKK (2) or ISK (0): none has 3
    ("1.299 kr", "en-SE", 1299.0, "SEK"),
    ("kr 1.299", "en-NO", 1299.0, "NOK"),
    ("1,299 kr.", "da-DK", 1299.0, "DKK"),
    ("2.990 ISK", "en", 2990.0, "ISK"),
    ("Rp 31.500", "en-ID", 31500.0, "IDR"),
    ("Rp31.500", "en", 31500.0, "IDR"),
    ("JPY 1.200", "en", 1200.0, "JPY"),
    ("₩12.000", "en", 12000.0, "KRW"),
    ("12.500 ₫", "en-VN", 12500.0, "VND"),
    ("$ 12.990", "en-CL", 12990.0, "CLP"),
    ("$1.250", "en-US", 1250.0, "USD"),
    ("1.299 €", "en-IE", 1299.0, "EUR"),
    ("1,299 €", "de-DE", 1299.0, "EUR"),
    # ... and the amounts it leaves as they were
    ("12,99 €", "de-DE", 12.99, "EUR"),
    ("1.299,00 €", "de-DE", 1299.0, "EUR"),
    ("49.99 USD", "de-DE", 49.99, "USD"),
    ("$1,299.00", "en-US", 1299.0, "USD"),
    ("1,299.00 SEK", "en-SE", 1299.0, "SEK"),
    ("¥1,200", "en-JP", 1200.0, "JPY"),
    # three-decimal currencies (the dinars, the Omani rial): the locale decides
    ("KWD 12.500", "en-KW", 12.5, "KWD"),
    ("12,500 TND", "fr-TN", 12.5, "TND"),
    ("BHD 1,250", "en-BH", 1250.0, "BHD"),
    # Swiss apostrophes, typographic ones too; Indian lakh grouping
    ("CHF 1’299.50", "de-CH", 1299.5, "CHF"),
    ("CHF 1’049,95", None, 1049.95, "CHF"),
    ("Fr. 1'299.–", "de-CH", 1299.0, "CHF"),
    ("₹1,00,000", "en-IN", 100000.0, "INR"),
    ("Rs. 12,50,000.00", "en-IN", 1250000.0, "INR"),
]
