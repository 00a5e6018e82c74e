"""OMS settings: every value comes from the environment, with embedded defaults.

On a bare machine (no PostgreSQL, no Redis) `manage.py` runs on a SQLite file and an
embedded filesystem Celery broker under ``var/``; production and the test suite set
``DATABASE_URL`` and ``CELERY_BROKER_URL`` (DESIGN.md §9). Those two, when not in the
environment, come from ``var/run.env`` if bin/run wrote one (``run_env_read``).
"""

import datetime as dt
import os
import sys
import zoneinfo
from pathlib import Path

import dj_database_url
from csp import constants as csp_constants
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("OMS_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def run_env_read(path: Path) -> dict[str, str]:
    """The database and broker ``bin/run`` chose for this checkout (``var/run.env``,
    ``NAME=value`` lines), so ``manage.py`` run by hand uses the running OMS's. Only
    ``DATABASE_URL`` and ``CELERY_BROKER_URL`` are taken; the environment always wins.
    A pytest run never reads it: its database and broker come from the environment
    (bin/test) or the embedded defaults, never from whatever bin/run last chose."""
    if "pytest" in sys.modules or not path.is_file():
        return {}
    chosen: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name in ("DATABASE_URL", "CELERY_BROKER_URL") and value:
            chosen[name] = value
    return chosen


RUN_ENV = run_env_read(VAR_DIR / "run.env")


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
# The embedded default key is only for a developer's bare machine; with DEBUG off a
# real key must be supplied.
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "audit",
    "routing",
    "compliance",
    "orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "oms_site.hardening.RejectNulBytes",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes requires: it turns a lockout into the 429 answer.
    "axes.middleware.AxesMiddleware",
]

# Sign-in lockout (django-axes): its backend first, refusing a locked-out sign-in
# before any password is checked. See oms_site/lockout.py and README "Security".
AUTHENTICATION_BACKENDS = [
    "oms_site.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("OMS_LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = dt.timedelta(minutes=float(os.environ.get("OMS_LOGIN_COOLOFF_MINUTES", "15")))
# Pages and admin lock a username (from any address: a desk shares one NAT address, so
# an address lock would lock the whole desk); bad API tokens lock their address.
AXES_LOCKOUT_PARAMETERS = "oms_site.lockout.lockout_parameters"
AXES_LOCKOUT_CALLABLE = "oms_site.hardening.lockout_response"
# A refused attempt during a lockout does not extend it: the cool-off runs from the
# failure that reached the limit (no password is checked meanwhile).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
# Sign-ins, failures and lockouts are on the audit trail; axes keeps only the counters.
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ADMIN = False  # audit.admin_lockouts registers the audited one

# Content-Security-Policy (django-csp) on every response: only this origin's scripts,
# styles and images; inline code only with the response's nonce (the API docs page).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp_constants.SELF],
        "script-src": [csp_constants.SELF, csp_constants.NONCE],
        "style-src": [csp_constants.SELF, csp_constants.NONCE],
        "img-src": [csp_constants.SELF, "data:"],
        "object-src": [csp_constants.NONE],
        "base-uri": [csp_constants.SELF],
        "form-action": [csp_constants.SELF],
        "frame-ancestors": [csp_constants.NONE],
    },
}

ROOT_URLCONF = "oms_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "orders.context_processors.navigation",
            ],
        },
    },
]

WSGI_APPLICATION = "oms_site.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", RUN_ENV.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'oms.sqlite3'}")),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
    )
}
# The firm's trading day: daily limits and counters (the running exposure's trade
# date) roll at midnight in this time zone. PostgreSQL's exposure trigger reads it from
# the session setting ``oms.firm_time_zone``, set on every connection here.
OMS_FIRM_TIME_ZONE = os.environ.get("OMS_FIRM_TIME_ZONE", "UTC")
try:
    zoneinfo.ZoneInfo(OMS_FIRM_TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(
        f"OMS_FIRM_TIME_ZONE={OMS_FIRM_TIME_ZONE!r} is not a time zone (an IANA name such as America/New_York)"
    ) from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite has no row locks; serialise writers instead of failing with "locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    if OMS_FIRM_TIME_ZONE != "UTC":
        raise ImproperlyConfigured(
            "The embedded SQLite database keeps the trading day in UTC: set OMS_FIRM_TIME_ZONE only with PostgreSQL."
        )
else:
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = f"-c oms.firm_time_zone={OMS_FIRM_TIME_ZONE}"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Dates and times as the pages show them (24-hour UTC), in the admin too.
FORMAT_MODULE_PATH = ["oms_site.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/orders/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "audit.api_auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["oms_site.parsers.StrictJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "orders.api.pagination.StandardPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "oms_site.schema.AutoSchema",
    "EXCEPTION_HANDLER": "oms_site.errors.api_exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "OMS API",
    "DESCRIPTION": "Buy-side Order Management System: orders, executions, positions.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Serve the docs' JavaScript ourselves: trading networks rarely reach a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Fields named "status" with other choices than an order's (whose enum keeps its name).
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "orders.models.OrderStatus",
        "LocalCloseStatusEnum": "orders.services.local_close.LOCAL_CLOSE_STATUSES",
    },
}

# Celery: Redis in production and tests; an embedded filesystem broker by default so a
# bare machine needs no server.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", RUN_ENV.get("CELERY_BROKER_URL", "filesystem://"))
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery-queue"
    (_queue_dir / "processed").mkdir(parents=True, exist_ok=True)
    (_queue_dir / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "control_folder": str(_queue_dir / "control"),
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_queue_dir / "processed"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# One queue per OMS installation (or test run) sharing a Redis server.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TIMEZONE = "UTC"

# ClOrdIDs must never repeat for a venue: the prefix separates OMS instances that could
# otherwise reuse order numbers (for example after a database restore).
OMS_CLORDID_PREFIX = os.environ.get("OMS_CLORDID_PREFIX", "OMS")
# How long an override request may wait for a compliance decision (and how long an
# approval stays usable): RTS 6 art. 15(6) wants overrides temporary.
OMS_OVERRIDE_TTL_SECONDS = int(os.environ.get("OMS_OVERRIDE_TTL_SECONDS", "3600"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Failures and lockouts are warnings; each success is on the audit trail already.
        "axes": {"level": "WARNING"},
    },
}

if not DEBUG:
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Load balancers probe over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# FIX session hosting in Celery workers (routing.hosting): a worker holds a venue's
# session under a lease; a dead holder's venue is taken over within TTL + poll seconds.
OMS_FIX_HOSTING = env_bool("OMS_FIX_HOSTING", True)
OMS_FIX_LEASE_TTL = float(os.environ.get("OMS_FIX_LEASE_TTL", "6"))
OMS_FIX_LEASE_RENEW = float(os.environ.get("OMS_FIX_LEASE_RENEW", "2"))
OMS_FIX_LEASE_POLL = float(os.environ.get("OMS_FIX_LEASE_POLL", "1"))
# Seconds between runs of the audit sealer (chains committed audit events).
OMS_AUDIT_SEAL_INTERVAL = float(os.environ.get("OMS_AUDIT_SEAL_INTERVAL", "1"))
OMS_FIX_INBOX_SWEEP = float(os.environ.get("OMS_FIX_INBOX_SWEEP", "60"))
# How long an order waits in the outbox for its venue's session to come back before it
# is rejected "venue X unavailable since T"; and how often the workers run the end of
# day (DAY orders of venues whose session ended, GTD orders past expiry).
OMS_ROUTE_WAIT_SECONDS = float(os.environ.get("OMS_ROUTE_WAIT_SECONDS", "60"))
OMS_END_OF_DAY_EVERY = float(os.environ.get("OMS_END_OF_DAY_EVERY", "60"))
