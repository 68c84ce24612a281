from django.urls import path

from generator.api import openai

app_name = "openai"
urlpatterns = [
    path("models", openai.models, name="models"),
    path("images/generations", openai.generations, name="generations"),
    path("images/edits", openai.edits, name="edits"),
]
