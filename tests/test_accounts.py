from __future__ import annotations

import re

import pytest
from django.core import mail

from accounts.models import User
from tests.mailbox import confirmation_link


def _sign_up(client, email):
    form = {"email": email, "password1": "a-Long-pass-42", "password2": "a-Long-pass-42"}
    return client.post("/accounts/signup/", form)


@pytest.mark.django_db
def test_a_visitor_signs_up_confirms_the_email_and_lands_logged_in(client):
    response = _sign_up(client, "new@example.com")
    assert response.status_code == 302
    assert "/accounts/confirm-email/" in response["Location"]  # verification is mandatory
    user = User.objects.get(email="new@example.com")
    assert user.public_id.startswith("u_")
    assert client.get("/").status_code == 302  # not in until the e-mail is confirmed
    response = client.post(confirmation_link("new@example.com"))
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # confirmed in the same session: logged in


@pytest.mark.django_db
def test_optional_verification_lets_the_user_in_at_once(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    _sign_up(client, "o@example.com")
    assert client.get("/").status_code == 200
    assert len(mail.outbox) == 1  # the verification e-mail still goes out


@pytest.mark.django_db
def test_sign_up_with_a_taken_email_looks_like_a_new_one_and_mails_the_owner(client):
    User.objects.create_user(username="owner@example.com", email="owner@example.com", password="x")
    form = {"password1": "a-Long-pass-42", "password2": "a-Long-pass-42"}
    new = client.post("/accounts/signup/", {"email": "fresh@example.com", **form})
    page_new = client.get(new["Location"]).content.decode().replace("fresh@", "X@")
    client.logout()
    taken = client.post("/accounts/signup/", {"email": "owner@example.com", **form})
    assert (taken.status_code, taken["Location"]) == (new.status_code, new["Location"])
    assert taken.status_code == 302
    page_taken = client.get(taken["Location"]).content.decode().replace("owner@", "X@")
    assert "Confirmation email sent to X@example.com" in page_taken
    strip = lambda html: re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)  # noqa: E731
    assert strip(page_new) == strip(page_taken)
    assert User.objects.filter(email__iexact="owner@example.com").count() == 1  # no duplicate
    to_owner = [m for m in mail.outbox if "owner@example.com" in m.to]
    assert len(to_owner) == 1
    assert "already" in (to_owner[0].subject + to_owner[0].body).lower()


@pytest.mark.django_db
def test_mandatory_verification_keeps_the_user_out_until_confirmed(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    _sign_up(client, "m@example.com")
    response = client.get("/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/gallery/", "/gallery/abc/", "/account/", "/g/abc/card/"])
def test_every_app_page_sends_an_anonymous_visitor_to_log_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_login_and_logout(client, owner):
    response = client.post(
        "/accounts/login/", {"login": "owner@example.com", "password": "pw-Secret-123"}
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_public_ids_are_unique_and_not_the_email(owner, stranger):
    assert owner.public_id != stranger.public_id
    assert "@" not in owner.public_id


@pytest.mark.django_db
def test_without_sso_providers_the_pages_show_nothing_about_social_login(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": []}}
    for url in ("/accounts/login/", "/accounts/signup/"):
        html = client.get(url).content.decode()
        assert "/accounts/oidc/" not in html
        assert "Or use a third-party" not in html


@pytest.mark.django_db
def test_with_an_sso_provider_the_login_page_offers_it(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": "corp",
                    "name": "Corp SSO",
                    "client_id": "c",
                    "secret": "s",
                    "settings": {"server_url": "http://127.0.0.1:9/"},
                }
            ]
        }
    }
    html = client.get("/accounts/login/").content.decode()
    assert "/accounts/oidc/corp/login/" in html
    assert "Corp SSO" in html
