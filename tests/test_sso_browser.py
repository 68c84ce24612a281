"""Headless Chromium: "Sign in with <provider>" through a local OpenID Connect server (issue #18)."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount

from accounts.models import User
from tests.conftest import make_user
from tests.oidc_server import OIDCServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def oidc(settings):
    server = OIDCServer(client_id="easel-test", secret="test-secret")
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": "corp",
                    "name": "Corp SSO",
                    "client_id": "easel-test",
                    "secret": "test-secret",
                    "settings": {"server_url": server.issuer},
                }
            ]
        }
    }
    yield server
    server.close()


def sign_in_with_corp(page, base: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_role("link", name="Corp SSO").click()
    page.wait_for_url("**/accounts/oidc/corp/login/**")
    page.click("form button[type=submit]")  # allauth's "Continue" (a POST, not a GET, starts it)
    page.wait_for_url(f"{base}/")


def test_sign_in_with_a_provider_creates_the_account(live_server, page, oidc):
    oidc.next_user(sub="sub-new", email="newcomer@example.com")
    sign_in_with_corp(page, live_server.url)
    user = User.objects.get(email="newcomer@example.com")
    assert SocialAccount.objects.get(user=user).uid == "sub-new"
    assert EmailAddress.objects.get(user=user).verified
    assert page.locator("textarea[name=prompt]").is_visible()  # signed in on the studio


def test_a_verified_provider_email_links_the_existing_account(
    live_server, page, oidc, django_user_model
):
    existing = make_user(django_user_model, email="member@example.com")
    oidc.next_user(sub="sub-member", email="member@example.com")
    sign_in_with_corp(page, live_server.url)
    assert User.objects.filter(email__iexact="member@example.com").count() == 1
    assert SocialAccount.objects.get(uid="sub-member").user == existing


def test_an_unverified_provider_email_does_not_take_over_the_account(
    live_server, page, oidc, django_user_model
):
    existing = make_user(django_user_model, email="member@example.com")
    oidc.next_user(sub="sub-attacker", email="member@example.com", email_verified=False)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("link", name="Corp SSO").click()
    page.wait_for_url("**/accounts/oidc/corp/login/**")
    page.click("form button[type=submit]")
    # Treated like an e-mail sign-up of a taken address: "verify your e-mail", nothing linked.
    page.wait_for_url("**/accounts/confirm-email/")
    assert not SocialAccount.objects.filter(user=existing).exists()
    assert User.objects.filter(email__iexact="member@example.com").count() == 1
    assert "/accounts/login/" in page.goto(f"{live_server.url}/").url  # not signed in
