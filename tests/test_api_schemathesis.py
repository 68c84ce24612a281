"""Schemathesis (property-based tests from an OpenAPI document, https://schemathesis.readthedocs.io)
against both API dialects' generated documents, on a live server with a real API key: no 5xx,
and every response's status, content type and body are the ones the document declares.
Example counts are small so the file runs in well under a minute."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import ApiKey

pytestmark = pytest.mark.django_db(transaction=True)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def token(owner, local_model, settings):
    settings.EASEL_API_SYNC_TIMEOUT = 0  # no worker here: a sync wait answers at once
    return ApiKey.issue(owner, "schemathesis")[1]


def run(url: str, token: str) -> int:
    """Every operation of the document at `url`, EXAMPLES cases each; returns how many ran."""
    schema = schemathesis.openapi.from_url(url)
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @EXAMPLES
        @given(case=operation.as_strategy())
        def check(case):
            nonlocal ran
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
            ran += 1

        check()
    return ran


def test_the_meteron_api_keeps_to_its_document(live_server, token):
    assert run(f"{live_server.url}/api/schema/", token) >= 3


def test_the_openai_api_keeps_to_its_document(live_server, token):
    assert run(f"{live_server.url}/v1/schema/", token) >= 3
