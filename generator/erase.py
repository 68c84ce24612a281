"""Erase an account (issue #18): the user's stored objects, their rows, then the user.

One path for the user's "Delete my account" and the admin's delete. Order makes it retryable:
1. every storage object of the user is deleted first (outputs, thumbnails, input photos, share
   links' copies, and anything else under the user's own prefixes) — a failure raises and
   nothing in the database has changed, so the same call can simply be made again (deleting a
   missing object is fine);
2. then, in one transaction, the ledger rows are anonymised (user NULL, anonymised_at) and the
   user is deleted; generations, images, API keys, share links cascade with it.
"""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from generator import storage
from generator.models import Generation, OutputImage, ShareLink, UsageEntry


class EraseError(Exception):
    """Some storage objects could not be deleted; the account is untouched — try again."""


def user_prefixes(user) -> list[str]:
    """Storage prefixes that hold only this user's objects (other apps' exports included)."""
    return [f"{storage.PREFIX}{user.public_id}/", f"exports/{user.public_id}/"]


def stored_names(user) -> list[str]:
    """Every storage object name of the user: from the rows, and from the user's prefixes."""
    names: set[str] = set()
    for file, thumb in OutputImage.objects.filter(generation__user=user).values_list(
        "file", "thumbnail"
    ):
        names.update(n for n in (file, thumb) if n)
    inputs = set(
        Generation.objects.filter(user=user)
        .exclude(input_image="")
        .values_list("input_image", flat=True)
    )
    # An input photo shared with another user's generation (never the case today) stays.
    shared = set(
        Generation.objects.filter(input_image__in=inputs)
        .exclude(user=user)
        .values_list("input_image", flat=True)
    )
    names.update(inputs - shared)
    # Share links' own copies of the images (generator.sharing: shared/<random>/, no user in
    # the key, so no prefix finds them).
    for copies in ShareLink.objects.for_user(user).values_list("stored_names", flat=True):
        names.update(copies or [])
    for prefix in user_prefixes(user):
        names.update(obj.name for obj in storage.iter_stored(prefix))
    return sorted(names)


def erase_user(user) -> int:
    """Delete the user's objects from storage, anonymise their ledger, delete the user.

    Returns how many storage objects were deleted. Raises EraseError (nothing deleted in the
    database) when storage refuses some object: calling again retries."""
    names = stored_names(user)
    failed = []
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:
            failed.append(name)
    if failed:
        raise EraseError(f"{len(failed)} stored object(s) could not be deleted")
    with transaction.atomic():
        UsageEntry.objects.filter(user=user).update(user=None, anonymised_at=timezone.now())
        user.delete()
    return len(names)
