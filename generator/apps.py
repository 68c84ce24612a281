from django.apps import AppConfig


class GeneratorConfig(AppConfig):
    name = "generator"
    verbose_name = "Generation"

    def ready(self) -> None:
        # Connects the receiver that removes an image's objects from storage on delete.
        from generator import storage  # noqa: F401
