from django.urls import path

from generator.api import meteron

app_name = "api"
urlpatterns = [
    path("images/generations", meteron.generations, name="generations"),
    path("remaining/generations", meteron.remaining, name="remaining"),
]
