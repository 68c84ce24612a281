from django.urls import path

from . import exports, files, share_views, views

app_name = "gallery"
urlpatterns = [
    path("", views.gallery, name="list"),
    path("file/<str:token>", files.signed_file, name="signed_file"),
    # Before "<public_id>/": "exports" is a valid public id.
    path("exports/", exports.start, name="export_start"),
    path("exports/<public_id:public_id>/", exports.detail, name="export"),
    path("exports/<public_id:public_id>/status/", exports.status, name="export_status"),
    path("exports/<public_id:public_id>/download/", exports.download, name="export_download"),
    path("<public_id:public_id>/", views.detail, name="detail"),
    path("<public_id:public_id>/delete/", views.delete, name="delete"),
    path("<public_id:public_id>/star/", views.star, name="star"),
    path("<public_id:public_id>/rerun/", views.rerun, name="rerun"),
    path("<public_id:public_id>/retry/", views.retry, name="retry"),
    path("<public_id:public_id>/share/", share_views.create, name="share"),
    path("<public_id:public_id>/share/revoke/", share_views.revoke, name="share_revoke"),
    path("<public_id:public_id>/input/", files.input_image, name="input_image"),
    path("<public_id:public_id>/download/<int:index>/", files.download, name="download"),
    path(
        "<public_id:public_id>/images/<int:index>/<str:kind>/",
        files.image_file,
        name="image_file",
    ),
]
