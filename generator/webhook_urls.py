from django.urls import path

from . import webhooks

app_name = "webhooks"
urlpatterns = [
    path("<slug:provider>/", webhooks.receive, name="receive"),
]
