"""Easel's own settings (the generation pipeline, moderation and cost, retention, the API and
its waiting, input photos), star-imported by config/settings.py to keep that file short. Each
reads its environment variable (documented in .env.example); none depends on another setting.
"""

from django.core.exceptions import ImproperlyConfigured

from config.env import env, env_bool, env_int

# --- Generation pipeline --------------------------------------------------------------------

EASEL_LOCAL_PROVIDER_DELAY = float(env("EASEL_LOCAL_PROVIDER_DELAY", "1.5"))
EASEL_MAX_DOWNLOAD_BYTES = env_int("EASEL_MAX_DOWNLOAD_BYTES", 50 * 1024 * 1024)
EASEL_MAX_IMAGE_PIXELS = env_int("EASEL_MAX_IMAGE_PIXELS", 64_000_000)
EASEL_THUMBNAIL_SIZE = env_int("EASEL_THUMBNAIL_SIZE", 384)
EASEL_LEASE_SECONDS = env_int("EASEL_LEASE_SECONDS", 120)
EASEL_REQUEUE_AFTER_SECONDS = env_int("EASEL_REQUEUE_AFTER_SECONDS", 60)
EASEL_PROVIDER_TIMEOUT = float(env("EASEL_PROVIDER_TIMEOUT", "30"))
EASEL_MAX_TRANSIENT_RETRIES = env_int("EASEL_MAX_TRANSIENT_RETRIES", 5)
# The fair queue: how many of one user's generations may be in the task queue or running at
# once; the rest wait in Easel and go in as theirs end (0 = no cap: plain FIFO).
EASEL_USER_CONCURRENCY = env_int("EASEL_USER_CONCURRENCY", 4)
# A model with limits needs a verified e-mail address (limits are per person, not per account).
EASEL_LIMITED_MODELS_NEED_VERIFIED_EMAIL = env_bool(
    "EASEL_LIMITED_MODELS_NEED_VERIFIED_EMAIL", True
)
# --- Moderation and cost (issue #18) ---
# A monthly spend budget per user, all models (blank = none; a user's UserLimit overrides it).
EASEL_DEFAULT_MONTHLY_BUDGET = env("EASEL_DEFAULT_MONTHLY_BUDGET") or None
# An OpenAI-style moderation endpoint checked before spend (blank = only the block list).
EASEL_MODERATION_URL = env("EASEL_MODERATION_URL") or ""
EASEL_MODERATION_API_KEY = env("EASEL_MODERATION_API_KEY") or ""
EASEL_MODERATION_MODEL = env("EASEL_MODERATION_MODEL", "omni-moderation-latest")
EASEL_GALLERY_PAGE_SIZE = env_int("EASEL_GALLERY_PAGE_SIZE", 48)
# The most images one ZIP export may hold (issue #18); a bigger filtered view is refused.
EASEL_EXPORT_MAX_IMAGES = env_int("EASEL_EXPORT_MAX_IMAGES", 10_000)
# --- Retention (issue #18) ---
# Days a finished generation's images are kept when staff saved no retention policy in the
# admin (blank or 0 = forever); a model's own retention_days wins over both.
EASEL_RETENTION_DAYS = env_int("EASEL_RETENTION_DAYS", 0) or None
if EASEL_RETENTION_DAYS is not None and EASEL_RETENTION_DAYS < 0:
    raise ImproperlyConfigured("EASEL_RETENTION_DAYS must be a number of days (0 = forever)")
if env_int("EASEL_RETENTION_INTERVAL", 3600) <= 0:
    raise ImproperlyConfigured("EASEL_RETENTION_INTERVAL must be a positive number of seconds")
# --- Easel's own API (issue #17) ---
EASEL_API_RATE_LIMIT = env_int("EASEL_API_RATE_LIMIT", 120)  # requests per key per minute; 0 = off
EASEL_API_SYNC_TIMEOUT = env_int("EASEL_API_SYNC_TIMEOUT", 60)  # longest X-Async: false wait (s)
# How open pages learn that a card changed: "poll" (a request per card a second; the embedded
# default) or "sse" (server-sent events from /events/cards, generator/events.py: needs Redis and
# the ASGI server routed for /events/, README "Serving").
EASEL_LIVE_UPDATES = env("EASEL_LIVE_UPDATES", "poll")
# How long a live reader (an API wait, a card stream) trusts the notifications before looking at
# the row anyway: a lost message costs at most this much (generator/notify.py). A broken
# subscriber connection is noticed and polled around at once, so this covers only a publish that
# failed; at 2 s, 200 waiting requests' looks took 0.4 of a core (bench/live_wait.py).
EASEL_LIVE_RECHECK_SECONDS = env_int("EASEL_LIVE_RECHECK_SECONDS", 10)
if EASEL_LIVE_UPDATES not in ("poll", "sse"):
    raise ImproperlyConfigured("EASEL_LIVE_UPDATES must be poll or sse.")
EASEL_INPUT_MAX_BYTES = env_int("EASEL_INPUT_MAX_BYTES", 10 * 1024 * 1024)
EASEL_INPUT_MAX_PIXELS = env_int("EASEL_INPUT_MAX_PIXELS", 25_000_000)
# How long a presigned URL of an input photo handed to a provider lives (never past the
# generation's own deadline; S3 storage only).
EASEL_INPUT_URL_SECONDS = env_int("EASEL_INPUT_URL_SECONDS", 3600)
# Baseline views for `make bench` (/bench/trivial/); never on in production.
EASEL_BENCH_VIEWS = env_bool("EASEL_BENCH_VIEWS", False)
