"""Settings, read from environment variables in this one place.

Defaults are the embedded mode of `make run`: SQLite, a broker that needs no server (kombu's
filesystem transport) and a Ganache chain on 127.0.0.1:8545, all state under `var/`.
"""
import hashlib
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    return env(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}


VAR_DIR = Path(env("VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", True)
EMBEDDED_SECRET_KEY = "embedded-insecure-secret-key-change-me-in-production-0123456789"  # noqa: S105 - public
SECRET_KEY = env("SECRET_KEY", EMBEDDED_SECRET_KEY)
if not DEBUG and SECRET_KEY == EMBEDDED_SECRET_KEY:
    # The embedded key is public: sessions, CSRF tokens and the keys derived from it would be forgeable.
    raise ImproperlyConfigured("DEBUG is off: set SECRET_KEY to a long random value of your own (it is unset or "
                               "the public embedded default).")
ALLOWED_HOSTS = [h for h in env("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "audit",
    "compute",
    "pricing",
    "marketplace",
    "frontend",
]

MIDDLEWARE = [
    "marketplace.request_limits.RequestSizeLimitMiddleware",  # first: an oversized body is never read
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # the browser's language, or the one a user chose (cookie)
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "frontend.middleware.MemberLanguageMiddleware",  # a signed-in member's remembered language, on any browser
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "frontend.context_processors.locale",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        # Persistent connections (checked before reuse) save a connect per request: ~3x the catalog's
        # throughput on PostgreSQL (docs/benchmarks.md). On by default in production (DEBUG off); the
        # embedded mode's SQLite gains nothing from them.
        conn_max_age=int(env("DB_CONN_MAX_AGE", "0" if DEBUG else "600")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several processes (web, worker) share the file: wait for the write lock instead of failing. A
    # transaction takes the write lock when it begins (IMMEDIATE): one that began as a read and then
    # writes would get "database is locked" at once, without waiting. WAL lets reads go on meanwhile.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Two languages: Simplified Chinese and English, chosen by the browser's Accept-Language, or by the
# switcher (a cookie, and the member's profile once signed in). LANGUAGE_CODE is the deployment's default.
LANGUAGE_CODE = env("LANGUAGE_CODE", "en")
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "config" / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
FORMAT_MODULE_PATH = ["config.formats"]  # dates per language: templates use |date:"DATE_FORMAT" and the like
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# Amounts are integer cents of this one currency everywhere (ledger, API, chain); the UI formats them per
# locale. A zh-Hans deployment defaults to CNY.
MARKETPLACE_CURRENCY = env("MARKETPLACE_CURRENCY", "CNY" if LANGUAGE_CODE.lower().startswith("zh") else "USD")

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# htmx, Chart.js and libsodium are served from the npm packages (pinned in package-lock.json), never from a CDN.
# libsodium-wrappers' browser build needs libsodium's own build loaded first: both land under vendor/libsodium/.
STATICFILES_DIRS = [
    (prefix, BASE_DIR / "node_modules" / folder)
    for prefix, folder in (
        ("vendor/htmx", "htmx.org/dist"),
        ("vendor/chartjs", "chart.js/dist"),
        ("vendor/libsodium", "libsodium/dist/modules"),
        ("vendor/libsodium", "libsodium-wrappers/dist/modules"),
    )
    if (BASE_DIR / "node_modules" / folder).exists()
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# Request bodies: every route takes at most REQUEST_MAX_BYTES; the dataset import, whose sealed file
# (50 MB at most) travels as base64 in JSON, REQUEST_IMPORT_MAX_BYTES. Checked before a body is read.
REQUEST_MAX_BYTES = int(env("REQUEST_MAX_BYTES", str(1024 * 1024)))
REQUEST_IMPORT_MAX_BYTES = int(env("REQUEST_IMPORT_MAX_BYTES", str(70 * 1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_IMPORT_MAX_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES
# The API's JSON: how deep a document may nest and how many values it may hold (checked before decoding).
JSON_MAX_DEPTH = int(env("JSON_MAX_DEPTH", "32"))
JSON_MAX_ITEMS = int(env("JSON_MAX_ITEMS", "100000"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "marketplace.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["marketplace.throttling.TokenRateThrottle"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "marketplace.openapi.MarketplaceAutoSchema",
    "EXCEPTION_HANDLER": "marketplace.exception_handler.api_exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "marketplace.request_limits.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
# Rate limits per API token (per user for session auth), reads and writes apart; "" turns one off.
API_RATE_READ = env("API_RATE_READ", "120/min") or None
API_RATE_WRITE = env("API_RATE_WRITE", "30/min") or None
# The cache holds the rate counters: per process by default, shared by all workers with a Redis URL.
CACHE_URL = env("CACHE_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    if CACHE_URL.startswith(("redis://", "rediss://"))
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Data marketplace API",
    "DESCRIPTION": (
        "Buy the use of data, never a copy: quotes, purchases, compute jobs and audit.\n\n"
        f"**Amounts** — every price, amount, balance, fee and share — are integer cents of {MARKETPLACE_CURRENCY} "
        f"(12345 means 123.45 {MARKETPLACE_CURRENCY}); the web UI shows them in the currency's main unit. "
        "Authenticate with `Authorization: Token <secret>`; every refusal is `{\"message\": ..., \"extra\": ...}`."
        " GET /api/ lists the collections."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The browsable API page is served from the project's own static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ProductStatusEnum": "marketplace.models.catalog.Product.Status",
        "PurposeEnum": "marketplace.models.catalog.Product.Purpose",
        "CategoryEnum": "marketplace.models.catalog.Product.Category",
        "QuoteStatusEnum": "marketplace.models.trading.Quote.Status",
        "OrderStatusEnum": "marketplace.models.trading.Order.Status",
        "OrderGrantStatusEnum": "marketplace.models.trading.OrderGrant.Status",
    },
    # The unit of every amount, on each money field and parameter (marketplace/openapi.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "marketplace.openapi.money_units_postprocess",
    ],
}

# Celery: node tasks go to the queue `node.<slug>`, chain writes to `chain` (a slow chain never holds the
# slots that relay node messages), everything else to `celery`. Every task is acknowledged only once it
# ran, and a task whose worker died is delivered again: each handler is idempotent (QUALITY 12).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "filesystem://")
# How soon a consumer sees a new message: the broker's polling period (filesystem) in seconds.
BROKER_POLL_SECONDS = float(env("BROKER_POLL_SECONDS", "0.02"))
# Redis and other brokers with a visibility timeout: a message taken by a worker that died is delivered
# again after this many seconds. Longer than the longest step (a 1M x 1M PSI step: ~80 s).
BROKER_VISIBILITY_TIMEOUT = int(env("BROKER_VISIBILITY_TIMEOUT", "300"))
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    _broker_dir.mkdir(parents=True, exist_ok=True)
    # Whole messages or none, and a message taken by a process that died is delivered again.
    CELERY_BROKER_TRANSPORT = "compute.broker_fs:AtomicFilesystemTransport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "store_processed": False,
        "control_folder": str(_broker_dir / "control"),
        "polling_interval": BROKER_POLL_SECONDS,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = "celery"
CHAIN_QUEUE = "chain"
CELERY_TASK_ROUTES = {
    "audit.chain.tasks.outbox_process_task": {"queue": CHAIN_QUEUE},
    "audit.chain.tasks.outbox_sweep_task": {"queue": CHAIN_QUEUE},
    "audit.tasks.audit_anchor_task": {"queue": CHAIN_QUEUE},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE = {
    "audit-anchor": {"task": "audit.tasks.audit_anchor_task", "schedule": float(env("AUDIT_ANCHOR_INTERVAL", "30"))},
    "job-sweep": {"task": "compute.jobs.tasks.job_sweep_task", "schedule": float(env("JOB_SWEEP_INTERVAL", "15"))},
    "settlement-sweep": {
        "task": "marketplace.tasks.settlement_sweep_task",
        "schedule": float(env("SETTLEMENT_SWEEP_INTERVAL", "30")),
    },
    "outbox-sweep": {
        "task": "audit.chain.tasks.outbox_sweep_task",
        "schedule": float(env("OUTBOX_SWEEP_INTERVAL", "20")),
    },
    # Buyers whose grants expire within GRANT_EXPIRY_NOTICE_DAYS are told once; hourly is plenty for days.
    "grant-expiry-notice": {
        "task": "marketplace.tasks.grant_expiry_notify_task",
        "schedule": float(env("GRANT_EXPIRY_SCAN_INTERVAL", "3600")),
    },
}

# Chain
CHAIN_RPC_URL = env("CHAIN_RPC_URL", "http://127.0.0.1:8545")
# The chain id this deployment writes to; every process refuses an endpoint of another chain. Empty: any.
CHAIN_ID = int(env("CHAIN_ID", "0")) or None
# The endpoint a reader's browser queries to check audit roots on its own (the explorer's in-page check); it
# must allow the site's origin (CORS). Empty: the one above.
CHAIN_PUBLIC_RPC_URL = env("CHAIN_PUBLIC_RPC_URL", "")
CHAIN_RPC_TIMEOUT = float(env("CHAIN_RPC_TIMEOUT", "5"))  # seconds per JSON-RPC call: a silent chain fails reads fast
# Ganache's first deterministic account: the platform operator on the dev chain (deploys, anchors).
CHAIN_OPERATOR_KEY = env(
    "CHAIN_OPERATOR_KEY", "0x4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d"
)
CHAIN_DEV_FUNDING = env_bool("CHAIN_DEV_FUNDING", True)
CHAIN_CONFIRMATIONS = int(env("CHAIN_CONFIRMATIONS", "1"))
CHAIN_TX_TIMEOUT = float(env("CHAIN_TX_TIMEOUT", "30"))
# A sent write with no receipt this many seconds after the node took it is stuck: it is signed again
# with the same nonce and fees raised by an eighth (the replacement rule of Geth, Besu and Anvil),
# never past CHAIN_MAX_FEE_WEI per gas.
CHAIN_REPLACE_AFTER = float(env("CHAIN_REPLACE_AFTER", "180"))
CHAIN_MAX_FEE_WEI = int(env("CHAIN_MAX_FEE_WEI", str(500 * 10**9)))
# The operator's dashboard counts a chain write as stuck when it is still pending or sent, untouched this long.
CHAIN_OUTBOX_STUCK_SECONDS = int(env("CHAIN_OUTBOX_STUCK_SECONDS", "300"))
CONTRACTS_SOURCE_DIR = BASE_DIR / "contracts"
CONTRACTS_BUILD_DIR = Path(env("CONTRACTS_BUILD_DIR", str(VAR_DIR / "build" / "contracts")))
CHAIN_DEPLOYMENTS_DIR = Path(env("CHAIN_DEPLOYMENTS_DIR", str(VAR_DIR / "deployments")))
SOLC_BINARY = Path(env("SOLC_BINARY", str(BASE_DIR / "contracts" / "solc.js")))

# The operator's own chain key (it anchors audit roots) is wrapped at rest with a key derived from this.
# Node keys are never here: each node generates and keeps its own, under its own secret.
KEY_ENCRYPTION_SECRET = env(
    "KEY_ENCRYPTION_SECRET", hashlib.sha256(("kek:" + SECRET_KEY).encode()).hexdigest()
)
# The marketplace signs the job specs and requests it sends to nodes with this Ed25519 key (hex seed);
# nodes hold its public half. Unset: one is generated once into VAR_DIR/marketplace-signing.key.
MARKETPLACE_SIGNING_KEY = env("MARKETPLACE_SIGNING_KEY", "")
# Set by `make run`: the embedded runner starts each organisation's node on this machine (a new one too).
EMBEDDED_NODES = env_bool("EMBEDDED_NODES", False)
# A node that has not said hello for this long is shown as offline (nodes say hello every ~20 s).
NODE_OFFLINE_SECONDS = int(env("NODE_OFFLINE_SECONDS", "60"))
# A job that has not moved for this long fails with the reason (a party's node is down or gone), and
# the buyer is refunded. Longer than BROKER_VISIBILITY_TIMEOUT: a step whose node died gets its chance
# to be delivered again first.
JOB_STALL_SECONDS = int(env("JOB_STALL_SECONDS", "600"))
# A joint prediction consumes one grant unit per started batch of this many records.
VFL_PREDICT_BATCH = int(env("VFL_PREDICT_BATCH", "1000"))
# A buyer runs at most this many joint-modelling trials (vfl_trial) of one product.
VFL_TRIALS_PER_PRODUCT = int(env("VFL_TRIALS_PER_PRODUCT", "3"))
# A finished job whose order is still unsettled this long after is settled by the sweep (its settlement was lost).
SETTLEMENT_GRACE_SECONDS = float(env("SETTLEMENT_GRACE_SECONDS", "30"))
# Which audit parties (organisation slugs) a user may read; None means all (operator, auditor).
AUDIT_PARTY_RESOLVER = env("AUDIT_PARTY_RESOLVER", "marketplace.selectors.user_audit_parties")

# Release and pricing defaults
RELEASE_MIN_COHORT = int(env("RELEASE_MIN_COHORT", "3"))
PLATFORM_FEE_BPS = int(env("PLATFORM_FEE_BPS", "500"))
# Catalog pages are the same for every caller: cache each for a few seconds (0 turns it off).
CATALOG_CACHE_SECONDS = int(env("CATALOG_CACHE_SECONDS", "5"))
QUOTE_VALIDITY_SECONDS = int(env("QUOTE_VALIDITY_SECONDS", "900"))
# A quote's coverage is released with discrete Laplace noise of scale 1/QUOTE_EPSILON (a provider's node
# grants at most its NODE_QUOTE_EPSILON_MAX), charged to the buyer's quote budget on the product.
QUOTE_EPSILON = float(env("QUOTE_EPSILON", "0.5"))
QUOTE_BUDGET_EPSILON = float(env("QUOTE_BUDGET_EPSILON", "5"))

# PSI over a direct link between the two nodes (protocol psi_direct, SecretFlow's engine in .venv-spu; optional).
# A psi purchase runs on it when both sides hold at least PSI_DIRECT_MIN_ROWS rows and the engine is installed,
# or when the buyer asks for psi_transport "direct". The consumer's node listens on PSI_DIRECT_HOST (loopback in
# the embedded default; a deployment's private address) and tells its peer PSI_DIRECT_ADVERTISED_HOST.
PSI_DIRECT_MIN_ROWS = int(env("PSI_DIRECT_MIN_ROWS", "200000"))
PSI_DIRECT_HOST = env("PSI_DIRECT_HOST", "127.0.0.1")
PSI_DIRECT_ADVERTISED_HOST = env("PSI_DIRECT_ADVERTISED_HOST", "")
PSI_DIRECT_TIMEOUT = float(env("PSI_DIRECT_TIMEOUT", "600"))  # seconds to wait for the peer, and per message
PSI_DIRECT_PYTHON = Path(env("PSI_DIRECT_PYTHON", str(BASE_DIR / ".venv-spu" / "bin" / "python")))
PSI_DIRECT_WORK_DIR = env("PSI_DIRECT_WORK_DIR", "")  # a run's private files (deleted after); "": the temp dir

# Notifications' e-mail goes through Django's mail backend: by default written to files under var/mail (the
# embedded mode sends nothing off the machine); a deployment sets EMAIL_BACKEND and its SMTP settings.
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = env("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = int(env("EMAIL_PORT", "25"))
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000")  # e-mails link back to pages under it
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "marketplace@localhost")
# A grant this close to its expiry gets its buyer a notification (once).
GRANT_EXPIRY_NOTICE_DAYS = int(env("GRANT_EXPIRY_NOTICE_DAYS", "7"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "WARNING")},
}

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
