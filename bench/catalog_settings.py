"""Settings of the catalog benchmark's second server: the project's settings with persistent database
connections (config/settings.py opens one per request: conn_max_age=0). Used by bench/catalog.py only."""
from config.settings import *  # noqa: F403
from config.settings import DATABASES

DATABASES["default"]["CONN_MAX_AGE"] = 60
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
