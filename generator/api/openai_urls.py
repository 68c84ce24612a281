from django.urls import path

from generator.api import openai

app_name = "openai"
urlpatterns = [path("images/generations", openai.generations, name="generations")]
