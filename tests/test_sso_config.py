"""config/sso.py: OpenID Connect providers come from the environment only (issue #18)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.sso import oidc_apps


def test_unset_means_no_providers(monkeypatch):
    monkeypatch.delenv("EASEL_OIDC_PROVIDERS", raising=False)
    assert oidc_apps() == []


def test_a_provider_is_read_from_its_variables(monkeypatch):
    monkeypatch.setenv("EASEL_OIDC_PROVIDERS", "corp")
    monkeypatch.setenv("OIDC_CORP_CLIENT_ID", "cid")
    monkeypatch.setenv("OIDC_CORP_SECRET", "sec")
    monkeypatch.setenv("OIDC_CORP_SERVER_URL", "https://id.example.com")
    monkeypatch.setenv("OIDC_CORP_LABEL", "Corp SSO")
    assert oidc_apps() == [
        {
            "provider_id": "corp",
            "name": "Corp SSO",
            "client_id": "cid",
            "secret": "sec",
            "settings": {"server_url": "https://id.example.com"},
        }
    ]


def test_a_missing_variable_stops_start_up_naming_it(monkeypatch):
    monkeypatch.setenv("EASEL_OIDC_PROVIDERS", "corp")
    monkeypatch.setenv("OIDC_CORP_CLIENT_ID", "cid")
    monkeypatch.delenv("OIDC_CORP_SECRET", raising=False)
    monkeypatch.delenv("OIDC_CORP_SERVER_URL", raising=False)
    with pytest.raises(ImproperlyConfigured, match="OIDC_CORP_SECRET, OIDC_CORP_SERVER_URL"):
        oidc_apps()
