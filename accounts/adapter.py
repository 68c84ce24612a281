from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter


class AccountAdapter(DefaultAccountAdapter):
    """Keeps Django's username column filled (from the e-mail); allauth logs in by e-mail."""

    def populate_username(self, request, user):
        if not user.username:
            user.username = user.email
