"""`{% live_events_url %}`: where the page's live cards listen (generator/events.py), or ""
when they poll (the embedded default, or no ASGI server routed for /events/)."""

from django import template
from django.urls import reverse

from generator import events

register = template.Library()


@register.simple_tag
def live_events_url() -> str:
    return reverse("generator:live_cards") if events.available() else ""
