from django.urls import path

from . import events, views

app_name = "generator"
urlpatterns = [
    path("", views.home, name="home"),
    path("g/<public_id:public_id>/card/", views.card, name="card"),
    path("events/cards", events.cards, name="live_cards"),
]
