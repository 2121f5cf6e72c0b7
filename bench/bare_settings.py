"""Production settings serving bench/bare_site.py instead of config/urls.py (bench/api_overhead.py).

Everything else, the middleware, installed apps and REST_FRAMEWORK defaults included, is production's:
the bare server differs from the product's only in its URLconf. Settings have no environment variable
for ROOT_URLCONF, hence this module.
"""

from config.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.bare_site"
