from __future__ import annotations

import pytest
from django.core import mail

from accounts.models import User


@pytest.mark.django_db
def test_a_visitor_signs_up_with_email_and_password_and_lands_logged_in(client):
    response = client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "password1": "a-Long-pass-42", "password2": "a-Long-pass-42"},
    )
    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert user.public_id.startswith("u_")
    assert client.get("/").status_code == 200  # logged in (verification is optional)
    assert len(mail.outbox) == 1  # the verification e-mail still goes out


@pytest.mark.django_db
def test_mandatory_verification_keeps_the_user_out_until_confirmed(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    client.post(
        "/accounts/signup/",
        {"email": "m@example.com", "password1": "a-Long-pass-42", "password2": "a-Long-pass-42"},
    )
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
