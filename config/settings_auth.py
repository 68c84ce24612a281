"""Accounts settings (django-allauth, single sign-on, passwords), star-imported by
config/settings.py to keep that file short. ACCOUNT_EMAIL_VERIFICATION, which depends on DEBUG,
stays there."""

from config.env import env
from config.sso import oidc_apps

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_RATE_LIMITS = {
    "login_failed": env("RATE_LIMIT_LOGIN_FAILED", "10/m/ip,5/5m/key"),
    # Sign-ups per address: 5 an hour, 20 a day (allauth's default is 20 a minute).
    "signup": env("RATE_LIMIT_SIGNUP", "5/h/ip,20/d/ip"),
    "reset_password": "20/m/ip,5/m/key",
}
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"

# Single sign-on (issue #18): OpenID Connect providers from EASEL_OIDC_PROVIDERS (config/sso.py).
# A provider's user whose e-mail matches an existing account is logged in to it and the provider
# is connected — only when the provider says the address is verified (claim email_verified; allauth
# matches verified addresses only). Takeover risk: a provider that marks addresses verified without
# checking them could sign in as any local user; list only providers you trust for that.
SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": oidc_apps()}}
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
