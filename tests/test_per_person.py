"""Limits are per person, not per account (issue 14): a model with limits needs a verified
e-mail address by default, and sign-ups from one address are rate-limited tightly."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.core.cache import cache

from accounts.models import ApiKey
from generator.models import Generation, UsageEntry
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def limited(local_model):
    local_model.daily_image_limit = 5
    local_model.save()
    return local_model


def post(client, model):
    return client.post(
        "/", {"model": model.slug, "prompt": "a fox", "size": "512x512", "num_images": 1}
    )


def test_an_unverified_account_cannot_use_a_model_with_limits(client, django_user_model, limited):
    user = make_user(django_user_model, verified=False)
    client.force_login(user)
    response = post(client, limited)
    assert response.status_code == 403
    text = response.content.decode()
    assert "Verify your e-mail address to use Local Sketch" in text
    assert not Generation.objects.exists() and not UsageEntry.objects.exists()
    # Verified: the same request goes through.
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    assert post(client, limited).status_code == 302
    assert Generation.objects.count() == 1


def test_models_without_limits_staff_and_the_setting_need_no_verification(
    client, django_user_model, local_model, limited, settings
):
    user = make_user(django_user_model, verified=False)
    client.force_login(user)
    local_model.daily_image_limit = None
    local_model.save()
    assert post(client, local_model).status_code == 302  # no limits: nothing per person
    local_model.daily_image_limit = 5
    local_model.save()
    settings.EASEL_LIMITED_MODELS_NEED_VERIFIED_EMAIL = False
    assert post(client, local_model).status_code == 302
    settings.EASEL_LIMITED_MODELS_NEED_VERIFIED_EMAIL = True
    boss = make_user(django_user_model, verified=False, is_staff=True)
    client.force_login(boss)
    assert post(client, local_model).status_code == 302


def test_both_api_dialects_answer_403_in_their_own_shape(client, django_user_model, limited):
    user = make_user(django_user_model, verified=False)
    _, token = ApiKey.issue(user, name="k")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    openai = client.post(
        "/v1/images/generations",
        {"model": limited.slug, "prompt": "a fox", "size": "512x512"},
        content_type="application/json",
        **auth,
    )
    assert openai.status_code == 403 and "Retry-After" not in openai
    assert openai.json()["error"]["code"] == "email_not_verified"
    meteron = client.post(
        "/api/images/generations",
        {"prompt": "a fox", "size": "512x512"},
        content_type="application/json",
        HTTP_X_MODEL=limited.slug,
        HTTP_X_ASYNC="true",
        **auth,
    )
    assert meteron.status_code == 403 and "Verify your e-mail" in meteron.json()["error"]
    assert not Generation.objects.exists()


def test_sign_ups_from_one_address_are_limited(client, settings):
    cache.clear()
    codes = []
    for n in range(7):
        response = client.post(
            "/accounts/signup/",
            {
                "email": f"p{n}@example.com",
                "password1": "a-Long-pass-42",
                "password2": "a-Long-pass-42",
            },
        )
        codes.append(response.status_code)
        client.logout()
    assert codes[:5] == [302] * 5, codes
    assert codes[5:] == [429, 429], codes
