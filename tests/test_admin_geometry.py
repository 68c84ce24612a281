"""Issue 16: what a newcomer sees in the admin — distinct section names, uncut chart labels."""

from __future__ import annotations

from datetime import date, timedelta

from django.apps import apps

from generator.admin_views import stacked_bars_svg


def test_admin_sections_have_distinct_names():
    names = [apps.get_app_config(label).verbose_name for label in ("account", "accounts")]
    assert names[0] != names[1], names


def test_last_date_label_fits_inside_the_chart():
    days = [date(2026, 11, 2) + timedelta(days=i) for i in range(30)]
    chart = stacked_bars_svg(days, {"completed": {days[-1]: 3}}, {"completed": "#080"})
    last = chart["labels"][-1]
    assert last["text"] == "01 Dec"
    # 10-px text centred on x: at most 0.6 em per character on either side of the centre.
    half = len(last["text"]) * 10 * 0.6 / 2
    assert last["x"] + half <= chart["width"], (last, chart["width"])
    assert all(b["x"] + b["w"] <= chart["right"] for b in chart["bars"])
