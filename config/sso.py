"""Single sign-on (issue #18): OpenID Connect providers for allauth, read from the environment.

EASEL_OIDC_PROVIDERS=corp,other names the providers; each NAME (upper-cased) then needs
OIDC_<NAME>_CLIENT_ID, OIDC_<NAME>_SECRET and OIDC_<NAME>_SERVER_URL (the issuer; allauth fetches
<SERVER_URL>/.well-known/openid-configuration, OpenID Connect Discovery 1.0 §4) and may set
OIDC_<NAME>_LABEL (the button text, default the name). These become settings-based allauth "APPS"
(https://docs.allauth.org/en/latest/socialaccount/providers/openid_connect.html): no admin rows.
Unset: an empty list, and the log-in and sign-up pages show nothing about social log-in.
"""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured

from config.env import env, env_list


def oidc_apps() -> list[dict]:
    apps = []
    for name in env_list("EASEL_OIDC_PROVIDERS"):
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
            raise ImproperlyConfigured(f"EASEL_OIDC_PROVIDERS: {name!r} must be a-z, 0-9 and -")
        prefix = "OIDC_" + name.upper().replace("-", "_") + "_"
        values = {key: env(prefix + key) for key in ("CLIENT_ID", "SECRET", "SERVER_URL")}
        missing = [prefix + key for key, value in values.items() if not value]
        if missing:
            raise ImproperlyConfigured(
                f"OpenID Connect provider {name!r} needs {', '.join(missing)}"
            )
        apps.append(
            {
                "provider_id": name,
                "name": env(prefix + "LABEL", name),
                "client_id": values["CLIENT_ID"],
                "secret": values["SECRET"],
                "settings": {"server_url": values["SERVER_URL"]},
            }
        )
    return apps
