"""Public share links (issue #18): /s/<token>/ and its images. No sign-in; the token is the key."""

from django.urls import path

from . import share_views

app_name = "share"
urlpatterns = [
    path("<share_token:token>/", share_views.shared_page, name="page"),
    path("<share_token:token>/<int:index>/", share_views.shared_image, name="image"),
]
