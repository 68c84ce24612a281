"""Fuzz (Hypothesis) over every gallery query parameter, URL ids and the webhook bodies: whatever
a stranger sends is never a 5xx. The test client re-raises a view's exception, so a 500 fails
the example outright. Example counts are kept small so the file runs in a few seconds in CI."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every CI run: a failure is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
GALLERY_KEYS = ("model", "status", "q", "from", "to", "sort", "starred", "page_size", "cursor")
texts = st.text(max_size=40) | st.sampled_from(
    ["9999-12-31", "0001-01-01", "2025-02-30", "-1", "0", "99999999999999999999", "\x00", "1"]
)
params = st.dictionaries(st.sampled_from(GALLERY_KEYS), texts, max_size=5)


@FUZZ
@given(query=params)
@example(query={"to": "9999-12-31"})
@example(query={"from": "0001-01-01", "q": "\x00"})
def test_no_gallery_filter_is_a_5xx(owner_client, query):
    assert owner_client.get("/gallery/", query).status_code < 500


@FUZZ
@given(query=params)
@example(query={"to": "9999-12-31"})
@example(query={"from": "0001-01-01", "q": "\x00"})
def test_no_detail_page_filter_is_a_5xx(owner_client, owner, make_generation, query):
    gen = make_generation(owner)
    assert owner_client.get(f"/gallery/{gen.public_id}/", query).status_code < 500


@FUZZ
@example(ident="ab\x00cd")
@given(ident=st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s and "?" not in s))
def test_no_url_id_is_a_5xx(owner_client, ident):
    for path in (f"/gallery/{quote(ident)}/", f"/g/{quote(ident)}/card/"):
        assert owner_client.get(path).status_code < 500


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
bodies = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(st.sampled_from(["id", "_id", "status", "output"]), json_values).map(
        lambda v: json.dumps(v).encode()
    )
    | st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n)
)


@FUZZ
@example(body=json.dumps({"id": "job\u0000x"}).encode(), provider="artificialstudio")
@given(body=bodies, provider=st.sampled_from(["artificialstudio", "replicate", "nope", "local"]))
def test_no_webhook_body_is_a_5xx(client, body, provider):
    response = client.post(f"/webhooks/{provider}/", body, content_type="application/json")
    assert response.status_code < 500
