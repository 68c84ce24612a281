"""Reads the confirmation link out of the e-mails Django's locmem backend collected (test helper).

pytest-django swaps EMAIL_BACKEND for locmem, so `django.core.mail.outbox` also holds the mail the
live server's thread sends. allauth 65's link-based verification mails a URL to
/accounts/confirm-email/<key>/ (allauth/templates/account/email/email_confirmation_message.txt).
"""

from __future__ import annotations

import re

from django.core import mail

_CONFIRM = re.compile(r"https?://\S+/accounts/confirm-email/[^/\s]+/")


def confirmation_link(to: str) -> str:
    """The newest confirmation URL mailed to `to`; fails the test when there is none."""
    for message in reversed(mail.outbox):
        if to in message.to:
            found = _CONFIRM.search(message.body)
            if found:
                return found.group(0)
    raise AssertionError(f"no confirmation mail to {to}: {[m.subject for m in mail.outbox]}")


def confirm_in_browser(page, email: str, home: str) -> None:
    """After the sign-up form: open the mailed link, press Confirm, land signed in on `home`."""
    page.wait_for_url("**/accounts/confirm-email/")
    page.goto(confirmation_link(email))
    page.click("form button[type=submit]")
    page.wait_for_url(home)
