"""Default settings of the scraper (no imports: the CLI reads them to build its --help fast)."""

DEFAULT_USER_AGENT = "dressfinder-scraper/0.1 (+https://github.com/dressfinder)"
DEFAULT_MAX_PAGES = 1000
DEFAULT_DELAY = 1.0                       # seconds between two requests to one host
DEFAULT_TIMEOUT = 20.0                    # seconds per request
DEFAULT_RETRIES = 3                       # attempts per request
DEFAULT_BACKOFF = 1.0                     # first pause before a retry; doubles each time
DEFAULT_MAX_REDIRECTS = 5
DEFAULT_MAX_PAGE_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_FEED_BYTES = 100 * 1024 * 1024   # one feed document (a Shopify or WooCommerce page is one)
DEFAULT_MAX_FEED_PAGES = 1000                 # Shopify's 250 and WooCommerce's 100 products a page
