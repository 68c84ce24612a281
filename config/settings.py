"""Easel settings: one module, driven by environment variables.

Every variable is documented in `.env.example` and in the README's configuration table.
The defaults are the *embedded* set-up (SQLite, local disk, Celery over kombu's filesystem
transport, the offline local provider) so `make run` needs no services at all. A bad value
for production raises ImproperlyConfigured at start-up, never later.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config import envfile
from config.env import env, env_bool, env_int, env_list

# Local .env (issue 16, config/envfile.py): development only; real environment variables win.
EASEL_ENV_FILE_USED = envfile.load_default()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("EASEL_VAR_DIR", BASE_DIR / "var")).resolve()


# --- Core -------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", False)
_DEV_SECRET = "dev-only-insecure-secret-key-do-not-use-in-production"
SECRET_KEY = env("SECRET_KEY", _DEV_SECRET)
if not DEBUG and SECRET_KEY == _DEV_SECRET and not env_bool("EASEL_ALLOW_DEV_SECRET", False):
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Set SECRET_KEY (or DEBUG=true for local development)."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "accounts",
    "generator",
    "gallery",
    "ninja",  # django-ninja: the API's OpenAPI schema and its bundled Swagger UI (#17)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.static_files.StaticFilesMiddleware",  # WhiteNoise, async-capable
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.security.ContentSecurityPolicyMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------

DATABASE_URL = env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker share the file; wait for a lock instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# DATABASE_POOL_SIZE > 0 (PostgreSQL): one psycopg pool of that many connections per process
# instead of one connection per thread. The ASGI server needs it (config/asgi.py sets 20 unless
# told otherwise): Django runs each request's database work in a thread of its own there, so
# 200 waiting requests would otherwise be 200 connections (PostgreSQL refuses past 100).
DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 0)
# Seconds a request waits for a pooled connection before it fails (a 503, config/health.py).
# With PostgreSQL unreachable the pool waits this long for a reconnect that does not come:
# psycopg_pool's 30 s held every API request (and /readyz) on uvicorn for half a minute; 5 s
# still rides out a restart of a few seconds (tests/test_multinode.py: 3.4-3.9 s).
DATABASE_POOL_TIMEOUT = env_int("DATABASE_POOL_TIMEOUT", 5)
if DATABASE_POOL_SIZE and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_SIZE,
        "timeout": DATABASE_POOL_TIMEOUT,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django returns a connection to the pool instead

envfile.make_sqlite_folder(DATABASES["default"])  # issue 16: SQLite cannot make var/

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Redis, cache, Celery -----------------------------------------------------------------

REDIS_URL = env("REDIS_URL")

if REDIS_URL:
    CACHES = {
        "default": {
            # Django's RedisCache, degrading to "no cache" while Redis is down (config/cache.py).
            "BACKEND": "config.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", "easel"),
            # Notice a stopped server at once instead of holding every page.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 1.0},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            # Room for a gallery page's presigned URLs (two per image); the default culls at 300.
            "OPTIONS": {"MAX_ENTRIES": 5000},
        }
    }

CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
CELERY_BROKER_FOLDER = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport works across processes on one machine; it needs absolute,
    # existing folders (created here so `make run` and the worker agree on them).
    for _sub in ("queue", "processed", "control"):
        (CELERY_BROKER_FOLDER / _sub).mkdir(parents=True, exist_ok=True)
    # kombu's filesystem transport with atomic message files (config/kombu_fs.py).
    CELERY_BROKER_TRANSPORT = "config.kombu_fs:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        "processed_folder": str(CELERY_BROKER_FOLDER / "processed"),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
        "store_processed": False,
        # kombu polls a virtual transport every polling_interval (default 1 s) whenever the
        # worker cannot take a message (prefetch 1, late acks): about 2 generations a second
        # with a deep queue (bench/embedded.py); 0.1 s costs nothing measurable.
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Longer than the longest task, so an unacknowledged task is redelivered only when
        # its worker is really gone.
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 900),
        "queue_order_strategy": "priority",
        "priority_steps": list(range(10)),
        "sep": ":",
        # A stopped Redis fails a send within a second (the row stays queued for the reaper)
        # instead of holding the request that submitted it.
        "socket_connect_timeout": 1.0,
        "socket_timeout": 5.0,
    }
    CELERY_BROKER_CONNECTION_TIMEOUT = 1.0

CELERY_TASK_IGNORE_RESULT = True
# Modules a worker imports at start: task modules not named tasks.py, and its metrics signals.
CELERY_IMPORTS = (
    "generator.remaining",
    "generator.retention",
    "generator.export_tasks",
    "config.worker_metrics",
)
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A task is acknowledged only after it ran, and a worker killed mid-task gives it back.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fix-up closes the database connection before and after every task unless
# this is set: a new PostgreSQL connection per task cost more than the task itself. The
# connection is kept instead, and config.celery drops it after a task if it is broken or older
# than CONN_MAX_AGE (SQLite: after every task, as CONN_MAX_AGE is 0 there).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 10_000)
# No task has a rate limit; without this the worker checks for one on every message.
CELERY_WORKER_DISABLE_RATE_LIMITS = True
CELERY_TASK_DEFAULT_PRIORITY = 5
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing while the broker is down must fail fast: the generation stays `queued` and the
# reaper dispatches it when the broker is back.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE = {
    "reap-generations": {
        "task": "generator.tasks.reap_generations",
        "schedule": float(env_int("EASEL_REAPER_INTERVAL", 30)),
    },
    # Retention (generator/retention.py): images older than their model's retention go.
    "expire-old-images": {
        "task": "generator.retention.expire_old_images",
        "schedule": float(env_int("EASEL_RETENTION_INTERVAL", 3600)),
    },
    # ZIP exports (issue #18): delete archives past their day, fail exports that stopped.
    "clean-exports": {"task": "generator.export_tasks.clean_exports", "schedule": 600.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Auth (django-allauth) ----------------------------------------------------------------

from config.settings_auth import *  # noqa: E402, F403 (allauth, SSO, passwords)

# "mandatory" by default (issue #14): with ACCOUNT_PREVENT_ENUMERATION (settings_auth), allauth answers a
# sign-up with an existing e-mail exactly like a new one and mails the owner "account already
# exists" instead of showing "already taken" (allauth.account.internal.flows.manage_email
# .assess_unique_email). With "optional" or "none" uniqueness wins and the form says so.
# DEBUG=true (make run) keeps "optional" so a local sign-up lands signed in without a mailbox.
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", "optional" if DEBUG else "mandatory")
if ACCOUNT_EMAIL_VERIFICATION not in {"none", "optional", "mandatory"}:
    raise ImproperlyConfigured("ACCOUNT_EMAIL_VERIFICATION must be none, optional or mandatory")

# --- E-mail -------------------------------------------------------------------------------

EMAIL_URL = env("EMAIL_URL")
if EMAIL_URL:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    _email = dj_database_url.urlparse.urlparse(EMAIL_URL)
    EMAIL_HOST = _email.hostname or "localhost"
    EMAIL_PORT = _email.port or 25
    EMAIL_HOST_USER = dj_database_url.urlparse.unquote(_email.username or "")
    EMAIL_HOST_PASSWORD = dj_database_url.urlparse.unquote(_email.password or "")
    EMAIL_USE_TLS = _email.scheme == "smtp+tls"
    EMAIL_USE_SSL = _email.scheme == "smtps"
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Easel <easel@localhost>")

# --- Storage ------------------------------------------------------------------------------

STORAGE_BACKEND = env("STORAGE_BACKEND", "local")
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(VAR_DIR / "media"))).resolve()
# Never served from a public folder: local files go through an owner-checked view.
MEDIA_URL = "/media-not-public/"

if STORAGE_BACKEND == "local":
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
elif STORAGE_BACKEND == "s3":
    AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME")
    if not AWS_STORAGE_BUCKET_NAME:
        raise ImproperlyConfigured("STORAGE_BACKEND=s3 needs AWS_STORAGE_BUCKET_NAME")
    AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL") or None
    AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME") or None
    AWS_ACCESS_KEY_ID = env("AWS_ACCESS_KEY_ID") or None
    AWS_SECRET_ACCESS_KEY = env("AWS_SECRET_ACCESS_KEY") or None
    AWS_S3_ADDRESSING_STYLE = env("AWS_S3_ADDRESSING_STYLE") or None
    AWS_QUERYSTRING_EXPIRE = env_int("AWS_QUERYSTRING_EXPIRE", 3600)
    if not 60 <= AWS_QUERYSTRING_EXPIRE <= 604800:  # SigV4 presigned URLs live at most 7 days
        raise ImproperlyConfigured("AWS_QUERYSTRING_EXPIRE must be 60–604800 seconds")
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": AWS_S3_ENDPOINT_URL,
            "region_name": AWS_S3_REGION_NAME,
            "access_key": AWS_ACCESS_KEY_ID,
            "secret_key": AWS_SECRET_ACCESS_KEY,
            "addressing_style": AWS_S3_ADDRESSING_STYLE,
            "querystring_auth": True,
            "querystring_expire": AWS_QUERYSTRING_EXPIRE,
            "signature_version": "s3v4",
            "default_acl": None,
            "file_overwrite": False,
        },
    }
else:
    raise ImproperlyConfigured("STORAGE_BACKEND must be 'local' or 's3'")

STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Serve static/ directly when collectstatic has not been run (development, tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Easel: pipeline, moderation and cost, retention, API, live updates, inputs -------------

from config.settings_easel import *  # noqa: E402, F403

# --- Security -----------------------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool(
    "SECURE_COOKIES", not DEBUG and PUBLIC_BASE_URL.startswith("https")
)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- i18n, logging ------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# --- Providers ----------------------------------------------------------------------------
# Connection secrets and base URLs come from the environment only: config/provider_settings.py.
from config.provider_settings import EASEL_PROVIDERS  # noqa: E402,F401

# --- Error pages and deploy checks (issue 14B) ---------------------------------------------
# URL-embedded credentials are masked on the debug page and in error e-mails; importing the
# module also registers the `check --deploy` refusal of DEBUG=false without EMAIL_URL.
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.security.SafeUrlExceptionReporterFilter"
import config.security  # noqa: E402,F401  (registers easel.E001)

# --- Operations (issue 16): EASEL_PROVIDER_QUEUES "replicate=slow,meteron=slow" sends those
# providers' tasks to queue "slow", the rest to the default (config/celery.py); JSON logs.
from config.celery import provider_queues, task_queues  # noqa: E402

EASEL_PROVIDER_QUEUES = provider_queues(env("EASEL_PROVIDER_QUEUES"))
CELERY_TASK_QUEUES = task_queues(EASEL_PROVIDER_QUEUES)
LOG_FORMAT = env("LOG_FORMAT", "text").lower()  # json: one JSON object per line (generator/logs.py)
LOGGING["formatters"]["json"] = {"()": "generator.logs.JsonFormatter"}
LOGGING["handlers"]["console"]["formatter"] = "json" if LOG_FORMAT == "json" else "plain"

# Prometheus metrics at /metrics (config/metrics.py): off (404) unless a scrape token is set;
# the scraper sends it as `Authorization: Bearer <token>`.
EASEL_METRICS_TOKEN = env("EASEL_METRICS_TOKEN", "")
if EASEL_METRICS_TOKEN:
    MIDDLEWARE.insert(0, "config.metrics.MetricsMiddleware")
