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


def checker(operation, statuses: set[int], token: str, slug: str):
    """A hypothesis test of `operation` that records the statuses it saw in `statuses`."""
    cases = [0]

    @EXAMPLES
    @given(case=operation.as_strategy())
    def check(case):
        cases[0] += 1
        if cases[0] % 2:
            if case.headers is not None and "X-Model" in case.headers:
                case.headers["X-Model"] = slug
            if isinstance(case.body, dict) and "model" in case.body:
                case.body["model"] = slug
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
        )
        statuses.add(response.status_code)

    return check


def run(url: str, token: str, slug: str) -> dict[str, set[int]]:
    """Every operation of the document at `url`, EXAMPLES cases each; returns the statuses seen
    per operation. Every other case names a real model (the slug), so that the success paths
    are fuzzed too, not only "unknown model"."""
    schema = schemathesis.openapi.from_url(url)
    seen: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        checker(operation, seen.setdefault(operation.label, set()), token, slug)()
    return seen


def test_the_meteron_api_keeps_to_its_document(live_server, token, local_model):
    seen = run(f"{live_server.url}/api/schema/", token, local_model.slug)
    assert len(seen) >= 3
    assert seen["POST /api/images/generations"] & {200, 202}, seen  # a success was fuzzed too
    assert 200 in seen["GET /api/images/generations"], seen


def test_the_openai_api_keeps_to_its_document(live_server, token, local_model):
    seen = run(f"{live_server.url}/v1/schema/", token, local_model.slug)
    assert len(seen) >= 3
    assert 200 in seen["POST /v1/images/generations"], seen  # a success was fuzzed too
