from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("", views.profile, name="profile"),
    path("usage/", views.usage, name="usage"),
    path("keys/", views.keys, name="keys"),
    path("delete/", views.delete_account, name="delete"),
]
