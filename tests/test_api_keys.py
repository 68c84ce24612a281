"""Personal API keys on /account/keys/ and service users (issue #17, keys)."""

from __future__ import annotations

import hashlib
import re

import pytest

from accounts.models import ApiKey, User

pytestmark = pytest.mark.django_db


def test_a_created_key_is_shown_once_and_stored_only_as_a_hash(owner_client, owner):
    response = owner_client.post("/account/keys/", {"name": "laptop"})
    assert response.status_code == 200
    token = re.search(r'<code id="new-key">([^<]+)</code>', response.content.decode()).group(1)
    key = ApiKey.objects.get(user=owner)
    assert key.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {key.prefix, key.key_hash, key.name}
    assert token.startswith(key.prefix)
    listing = owner_client.get("/account/keys/").content.decode()
    assert key.prefix in listing and token not in listing
    assert ApiKey.objects.for_token(token) == key


def test_a_revoked_key_no_longer_authenticates(owner_client, owner):
    key, token = ApiKey.issue(owner, "ci")
    response = owner_client.post("/account/keys/", {"revoke": str(key.pk)})
    assert response.status_code == 302
    assert ApiKey.objects.for_token(token) is None


def test_a_stranger_cannot_revoke_my_key(client, owner, stranger):
    key, token = ApiKey.issue(owner, "ci")
    client.force_login(stranger)
    assert client.post("/account/keys/", {"revoke": str(key.pk)}).status_code == 404
    assert client.post("/account/keys/", {"revoke": "x"}).status_code == 404
    assert ApiKey.objects.for_token(token) == key


def test_a_key_without_a_name_is_refused(owner_client, owner):
    assert owner_client.post("/account/keys/", {"name": " "}).status_code == 400
    assert not ApiKey.objects.filter(user=owner).exists()


def test_malformed_tokens_find_nothing(owner):
    ApiKey.issue(owner, "ci")
    for token in ("", "easel_", "Bearer x", "easel_" + "a" * 200):
        assert ApiKey.objects.for_token(token) is None


def test_a_service_key_makes_one_passwordless_account_per_external_user(staff):
    key, _ = ApiKey.issue(staff, "roomfix", ApiKey.Kind.SERVICE)
    first = key.service_user("alice@example.com")
    assert key.service_user("alice@example.com") == first
    other = key.service_user("bob")
    assert other != first
    assert not first.has_usable_password()
    assert first.service_owner == staff and first.external_id == "alice@example.com"
    assert User.objects.filter(service_owner=staff).count() == 2


def test_staff_issue_and_revoke_keys_in_the_admin(client, staff, owner):
    client.force_login(staff)
    response = client.post(
        "/admin/accounts/apikey/add/",
        {"user": str(owner.pk), "name": "svc", "kind": "service"},
        follow=True,
    )
    assert response.status_code == 200
    token = re.search(r"(easel_[A-Za-z0-9_-]{40,})", response.content.decode()).group(1)
    key = ApiKey.objects.for_token(token)
    assert key is not None and key.kind == "service"
    listing = client.get("/admin/accounts/apikey/").content.decode()
    assert key.prefix in listing and token not in listing
    client.post(
        "/admin/accounts/apikey/",
        {"action": "revoke", "_selected_action": [str(key.pk)]},
    )
    assert ApiKey.objects.for_token(token) is None
