"""`python -m config.firstrun [PORT]`: what `make run` prints once the database is migrated —
where everything is. Passwords in URLs are masked; no secret is printed."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit, urlunsplit

import django
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def masked(url: str) -> str:
    """The URL without its password (and without a user name's secret part)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def summary(port: str) -> list[str]:
    base = f"http://127.0.0.1:{port}"
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        database = f"SQLite at {db['NAME']}"
    else:
        database = masked(settings.DATABASE_URL)
    broker = settings.CELERY_BROKER_URL
    if broker.startswith("filesystem://"):
        broker = f"kombu filesystem broker in {settings.CELERY_BROKER_FOLDER}"
    else:
        broker = masked(broker)
    if settings.EMAIL_BACKEND.endswith("console.EmailBackend"):
        mail = "printed to this console (set EMAIL_URL to send it)"
    else:
        mail = f"SMTP {settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
    if settings.STORAGE_BACKEND == "s3":
        endpoint = settings.AWS_S3_ENDPOINT_URL or "AWS S3"
        storage = f"S3 bucket {settings.AWS_STORAGE_BUCKET_NAME} at {endpoint}"
    else:
        storage = f"local disk at {settings.MEDIA_ROOT}"
    cache = settings.CACHES["default"]
    return [
        f"  Easel is running at {base}/   (Ctrl-C stops web and worker)",
        f"  Admin:     {base}/admin/   (make a staff account: make superuser)",
        f"  Health:    {base}/healthz  {base}/readyz",
        f"  Database:  {database}",
        f"  Broker:    {broker}",
        f"  Cache:     {cache['BACKEND'].rsplit('.', 1)[-1]} {masked(str(cache['LOCATION']))}",
        f"  Storage:   {storage}",
        f"  Mail:      {mail}",
        f"  Settings:  {settings.EASEL_ENV_FILE_USED or 'environment only (no .env)'}",
    ]


def main(argv: list[str]) -> int:
    django.setup()
    port = argv[1] if len(argv) > 1 else "8000"
    print("\n" + "\n".join(summary(port)) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
