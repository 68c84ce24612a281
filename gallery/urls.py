from django.urls import path

from . import views

app_name = "gallery"
urlpatterns = [
    path("", views.gallery, name="list"),
    path("<str:public_id>/", views.detail, name="detail"),
    path("<str:public_id>/delete/", views.delete, name="delete"),
    path("<str:public_id>/star/", views.star, name="star"),
    path("<str:public_id>/rerun/", views.rerun, name="rerun"),
    path("<str:public_id>/retry/", views.retry, name="retry"),
    path("<str:public_id>/input/", views.input_image, name="input_image"),
    path("<str:public_id>/download/<int:index>/", views.download, name="download"),
    path(
        "<str:public_id>/images/<int:index>/<str:kind>/",
        views.image_file,
        name="image_file",
    ),
]
