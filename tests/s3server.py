"""Test equipment: an S3 server over real HTTP on loopback (moto's ThreadedMotoServer).

One server per test session on an ephemeral port; every test that asks for `s3` gets its own
private bucket and Easel's default storage switched to django-storages' S3Storage pointed at it
(the same OPTIONS config/settings.py builds from the environment). Django resets
default_storage when STORAGES changes, so the override takes effect at once.

    def test_x(s3):
        s3.keys()              # every object key in the bucket
        s3.get(key)            # bytes of one object
        s3.endpoint            # "http://127.0.0.1:PORT"
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass

import pytest

from tests.conftest import require

_buckets = itertools.count()
ACCESS_KEY = "easel-test-key"
SECRET_KEY = "easel-test-secret"
REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    client: object

    def keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", ()))

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def acl_grants(self, key: str) -> list[dict]:
        return self.client.get_object_acl(Bucket=self.bucket, Key=key)["Grants"]

    def env(self) -> dict[str, str]:
        """The environment that points another process (a worker, a web node) at this bucket."""
        return {
            "STORAGE_BACKEND": "s3",
            "AWS_STORAGE_BUCKET_NAME": self.bucket,
            "AWS_S3_ENDPOINT_URL": self.endpoint,
            "AWS_S3_REGION_NAME": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_S3_ADDRESSING_STYLE": "path",
        }


@pytest.fixture(scope="session")
def s3_endpoint():
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:  # pragma: no cover - moto[server] is in requirements-dev.txt
        require(False, "moto[server] is not installed")
    # Dummy credentials: nothing may ever reach a real AWS account from the tests.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, settings) -> S3Server:
    import boto3
    from botocore.config import Config

    bucket = f"easel-test-{os.getpid()}-{next(_buckets)}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    client.create_bucket(Bucket=bucket)
    settings.STORAGE_BACKEND = "s3"
    settings.AWS_QUERYSTRING_EXPIRE = 3600
    settings.AWS_STORAGE_BUCKET_NAME = bucket
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": s3_endpoint,
                "region_name": REGION,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "addressing_style": "path",
                "querystring_auth": True,
                "querystring_expire": 3600,
                "signature_version": "s3v4",
                "default_acl": None,
                "file_overwrite": False,
            },
        },
    }
    return S3Server(endpoint=s3_endpoint, bucket=bucket, client=client)
