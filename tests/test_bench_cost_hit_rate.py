"""``docsight bench cost``'s description-cache figures, on hand-made outcomes and pictures (no cluster)."""

from __future__ import annotations

from types import SimpleNamespace

from docsight.benchmarks.cost import cache_hits, hit_rates_by_cache_key
from docsight.cost import FilterPolicy


def test_the_hit_rate_counts_cached_pictures_among_the_described():
    outcomes = [{"pictures": [{"status": "described", "cached": False}, {"status": "skipped", "cached": False},
                              {"status": "described", "cached": True}]},
                {"pictures": [{"status": "described", "cached": True}, {"status": "failed", "cached": False}]},
                {"pictures": None}]  # an outcome sent by reference and not read back counts nothing
    assert cache_hits(outcomes) == {"described": 3, "cache_hits": 2, "cache_hit_rate": 0.6667}
    assert cache_hits([])["cache_hit_rate"] == 0.0


def picture(index, sha256, caption="", context="", width=320):
    return SimpleNamespace(index=index, sha256=sha256, caption=caption, context=context, width=width, height=240,
                           size_bytes=1000, status="")


def test_a_key_holding_the_caption_or_the_text_around_meets_fewer_pictures_again():
    logo_a = picture(0, "logo", context="Annual report 2024")
    photo_a = picture(1, "photo", caption="Figure 1: The lake")
    icon = picture(2, "icon", width=8)  # too small: the filters skip it, it counts nowhere
    logo_b = picture(0, "logo", context="Quarterly review")
    photo_b = picture(1, "photo", caption="Figure 1: The lake", context="Quarterly review")
    rates = hit_rates_by_cache_key([("docx", [logo_a, photo_a, icon]), ("docx", [logo_b, photo_b])],
                                   FilterPolicy())
    assert rates == {"picture alone": 0.5, "picture and caption": 0.5, "picture, caption and nearby text": 0.0}
