"""Issue #14 part B: no secret on any error page; no production start without a mail server."""

from __future__ import annotations

import sys

from django.core import checks
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from config.security import check_email_backend, mask_url_credentials


def test_url_credentials_are_masked_whatever_the_scheme():
    assert "s3cret" not in mask_url_credentials("postgres://easel:s3cret@db:5432/easel")
    assert "s3cret" not in mask_url_credentials("redis://:s3cret@cache:6379/0")
    assert mask_url_credentials("redis://cache:6379/0") == "redis://cache:6379/0"


def test_the_debug_page_masks_database_redis_email_and_broker_urls(settings):
    # The page also shows this file's source lines, so no secret is spelled out in one piece.
    s = "-" + "s3cret"
    settings.DEBUG = True
    settings.DATABASE_URL = f"postgres://easel:db{s}@db:5432/easel"
    settings.REDIS_URL = f"redis://:redis{s}@cache:6379/0"
    settings.EMAIL_URL = f"smtp+tls://mailer:mail{s}@smtp.example.com:587"
    settings.CELERY_BROKER_URL = f"amqp://guest:broker{s}@mq:5672//"
    local_url = f"redis://:frame{s}@cache/1"  # noqa: F841 — a local the page would show
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    request = RequestFactory().get("/")
    html = ExceptionReporter(request, *exc_info).get_traceback_html()
    for secret in (f"db{s}", f"redis{s}", f"mail{s}", f"broker{s}", f"frame{s}"):
        assert secret not in html
    assert "cache:6379/0" in html  # the rest of the URL is still there to debug with


def test_check_deploy_fails_without_an_email_url_when_debug_is_off(settings):
    settings.DEBUG = False
    settings.EMAIL_URL = ""
    assert [m.id for m in check_email_backend()] == ["easel.E001"]
    ids = {m.id for m in checks.run_checks(include_deployment_checks=True)}
    assert "easel.E001" in ids


def test_check_deploy_passes_the_email_check_with_an_email_url(settings):
    settings.DEBUG = False
    settings.EMAIL_URL = "smtp://mail.example.com:25"
    assert check_email_backend() == []
