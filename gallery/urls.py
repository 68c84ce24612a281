from django.urls import path

from . import views

app_name = "gallery"
urlpatterns = [
    path("", views.gallery, name="list"),
    path("<str:public_id>/", views.detail, name="detail"),
    path(
        "<str:public_id>/images/<int:index>/<str:kind>/",
        views.image_file,
        name="image_file",
    ),
]
