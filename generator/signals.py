"""Every model-signal receiver of the project (and the Celery pool processes' warm-up), connected
once in GeneratorConfig.ready.

Together with Generation's transition methods (models.py), this module is the only place a
cache counter is bumped (the one rule in generator/counters.py): a write through the model's
save() or delete() reaches the receivers below, whoever made it — a view, the admin's change
form or bulk delete, a cascade from a deleted user.
"""

from __future__ import annotations

from celery.signals import worker_process_init
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from PIL import Image

from generator import counters, storage
from generator.models import AIModel, Generation, OutputImage, ShareLink
from generator.providers import BUILTIN, get_provider_class


@receiver(post_save, sender=Generation, dispatch_uid="userchanges_save")
def _generation_saved(sender, instance: Generation, created: bool = False, **kwargs) -> None:
    # A new row is not settled yet (see counters.history_key); a saved existing row may have
    # been edited in any field (the admin's change form).
    if created:
        counters.bump_user(instance.user_id)
    else:
        counters.bump_history(instance.user_id)


@receiver(post_delete, sender=Generation, dispatch_uid="userchanges_delete")
def _generation_deleted(sender, instance: Generation, **kwargs) -> None:
    counters.bump_history(instance.user_id)


@receiver(post_delete, sender=OutputImage, dispatch_uid="easel-delete-image-files")
def _delete_image_files(sender, instance: OutputImage, **kwargs) -> None:
    # Every way a row disappears runs this, so its objects leave storage too — only after the
    # transaction commits: a rolled-back delete keeps them.
    names = [instance.file.name, instance.thumbnail.name]
    transaction.on_commit(lambda: storage.delete_files(names))


@receiver(post_delete, sender=ShareLink, dispatch_uid="easel-delete-share-copies")
def _delete_share_copies(sender, instance: ShareLink, **kwargs) -> None:
    # A link's own copies of the images (S3, generator.sharing) go with its row — deleted in
    # the admin, or with its generation or its owner's account — after commit.
    names = list(instance.stored_names or [])
    if names:
        transaction.on_commit(lambda: storage.delete_files(names))


@receiver(post_save, sender=AIModel, dispatch_uid="models-version-save")
@receiver(post_delete, sender=AIModel, dispatch_uid="models-version-delete")
def _model_changed(sender, instance: AIModel, **kwargs) -> None:
    # Cached gallery pages and the model directory show models' names (gallery.forms).
    counters.bump_key(counters.MODELS_COUNTER)


# --- Privacy: uploaded photos leave storage with the last generation that uses them (14B) ---


@receiver(post_delete, sender=Generation, dispatch_uid="easel-delete-input-photo")
def _delete_input_photo(sender, instance: Generation, **kwargs) -> None:
    # A generation's delete — by its owner, the admin, or the cascade of a deleted account —
    # removes the person's uploaded photo too, after commit. A re-run shares the photo, so it
    # is removed only once no generation refers to it any more.
    name = instance.input_image.name if instance.input_image else ""
    if not name:
        return

    def remove() -> None:
        if not Generation.objects.filter(input_image=name).exists():
            storage.delete_files([name])

    transaction.on_commit(remove)


@worker_process_init.connect(dispatch_uid="easel_warm_up")
def _warm_up(**kwargs) -> None:
    """Each Celery pool process loads the built-in providers and Pillow's image plugins now,
    not in its first tasks: in a burst of 200 (bench/live_wait.py) py-spy found 0.5 s of the
    workers' CPU importing them, Pillow's full plugin scan first of all (its first WebP save)."""
    Image.init()
    for name in BUILTIN:
        get_provider_class(name)
