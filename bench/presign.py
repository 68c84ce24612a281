"""Presigned URLs for a gallery page: cost of signing vs. a cache hit, against moto over HTTP.

    EASEL_ALLOW_DEV_SECRET=1 .venv/bin/python bench/presign.py [--images 200] [--rounds 5]

Prints: time to sign N URLs with S3Storage.url (SigV4, local HMAC), time to fetch them from the
cache (locmem and, if REDIS_URL is set, Redis), and the time to download one presigned object.
No database needed; the cache is the same one generator/image_urls.py uses.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import boto3
    import django
    import httpx
    from django.conf import settings
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    bucket = "easel-bench"
    options = {
        "bucket_name": bucket,
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "access_key": "bench",
        "secret_key": "bench",
        "addressing_style": "path",
        "querystring_auth": True,
        "querystring_expire": 3600,
        "signature_version": "s3v4",
        "default_acl": None,
    }
    caches = {
        "locmem": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }
    if os.environ.get("REDIS_URL"):
        caches["redis"] = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            "KEY_PREFIX": f"bench-{uuid.uuid4().hex}",
        }
    django.setup()
    settings.STORAGE_BACKEND = "s3"
    settings.AWS_QUERYSTRING_EXPIRE = 3600
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }

    from django.core.cache import caches as cache_handler
    from django.core.files.storage import storages

    import generator.image_urls as images

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="generations/u/g/0.png", Body=os.urandom(512 * 1024))

    storage = storages["default"]
    names = [f"generations/u/g{i}/0_thumb.webp" for i in range(args.images)]

    sign = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        for n in names:
            storage.url(n)
        sign.append(time.perf_counter() - t)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"sign {args.images} URLs (S3Storage.url, SigV4): median {statistics.median(sign) * 1000:.1f} ms"
    )

    for label, config in caches.items():
        settings.CACHES = {"default": config}
        cold, warm = [], []
        for _ in range(args.rounds):
            cache_handler["default"].delete_many([images._cache_key(n, 3600) for n in names])
            t = time.perf_counter()
            images.presigned_urls(names)
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            images.presigned_urls(names)
            warm.append(time.perf_counter() - t)
        print(
            f"presigned_urls({args.images}) via {label}: first view median "
            f"{statistics.median(cold) * 1000:.1f} ms, next view median {statistics.median(warm) * 1000:.1f} ms"
        )

    url = storage.url("generations/u/g/0.png")
    got = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        response = httpx.get(url)
        got.append(time.perf_counter() - t)
        assert response.status_code == 200 and len(response.content) == 512 * 1024
    print(
        f"GET one 512 KB presigned object from moto: median {statistics.median(got) * 1000:.1f} ms"
    )
    server.stop()


if __name__ == "__main__":
    main()
