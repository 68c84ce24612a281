from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class GalleryConfig(AppConfig):
    name = "gallery"

    def ready(self) -> None:
        from gallery.forms import forget_model_directory

        for signal in (post_save, post_delete):
            signal.connect(
                forget_model_directory, sender="generator.AIModel", dispatch_uid=f"gallery-{signal}"
            )
