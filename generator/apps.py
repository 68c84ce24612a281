from django.apps import AppConfig


class GeneratorConfig(AppConfig):
    name = "generator"
    verbose_name = "Generation"

    def ready(self) -> None:
        # Connects every receiver: cache counters and storage clean-up (generator/signals.py).
        from generator import signals  # noqa: F401
