"""Picture filters: every rule and its reason code."""

from types import SimpleNamespace

import pytest

from docsight.cost.filters import Decision, FilterPolicy, PictureFacts, SkipReason, select_pictures


def picture(index, width=400, height=300, size_bytes=50_000):
    return PictureFacts(index=index, width=width, height=height, size_bytes=size_bytes)


def described(decisions):
    return [decision.index for decision in decisions if decision.describe]


def reasons(decisions):
    return {decision.index: decision.reason for decision in decisions if not decision.describe}


def test_ordinary_pictures_are_all_described():
    decisions = select_pictures([picture(i) for i in range(3)], "pdf", FilterPolicy())
    assert decisions == [Decision(0, True), Decision(1, True), Decision(2, True)]


def test_only_the_first_n_in_reading_order_are_described():
    pictures = [picture(i) for i in reversed(range(60))]  # given out of order
    decisions = select_pictures(pictures, "pdf", FilterPolicy(max_images_per_document=50))
    assert [d.index for d in decisions] == list(range(60))  # decisions in reading order
    assert described(decisions) == list(range(50))
    assert reasons(decisions) == {i: SkipReason.MAX_IMAGES_PER_DOCUMENT for i in range(50, 60)}


def test_skipped_icons_do_not_use_up_the_cap():
    pictures = [picture(0, 10, 10), picture(1), picture(2), picture(3)]
    decisions = select_pictures(pictures, "pdf", FilterPolicy(max_images_per_document=2))
    assert described(decisions) == [1, 2]
    assert reasons(decisions) == {0: SkipReason.TOO_SMALL, 3: SkipReason.MAX_IMAGES_PER_DOCUMENT}


def test_cap_zero_means_no_cap():
    decisions = select_pictures([picture(i) for i in range(80)], "pdf",
                                FilterPolicy(max_images_per_document=0))
    assert len(described(decisions)) == 80


def test_a_document_with_too_many_pictures_skips_the_vision_step():
    policy = FilterPolicy()  # skip_if_too_many_images=100
    assert len(described(select_pictures([picture(i) for i in range(100)], "pdf", policy))) == 50
    decisions = select_pictures([picture(i) for i in range(101)], "pdf", policy)
    assert described(decisions) == []
    assert set(reasons(decisions).values()) == {SkipReason.TOO_MANY_IMAGES}
    assert len(decisions) == 101
    no_limit = FilterPolicy(skip_if_too_many_images=0, max_images_per_document=0)
    assert len(described(select_pictures([picture(i) for i in range(101)], "pdf", no_limit))) == 101


def test_large_pictures_are_skipped_when_configured():
    limit = 5 * 1024 * 1024
    pictures = [picture(0, size_bytes=limit), picture(1, size_bytes=limit + 1)]
    assert reasons(select_pictures(pictures, "docx", FilterPolicy())) == {1: SkipReason.IMAGE_TOO_LARGE}
    assert reasons(select_pictures(pictures, "docx", FilterPolicy(skip_large_images=False))) == {}
    small_limit = FilterPolicy(max_image_size_mb=0.5)
    assert reasons(select_pictures([picture(0, size_bytes=600_000)], "pdf", small_limit)) == {
        0: SkipReason.IMAGE_TOO_LARGE}


@pytest.mark.parametrize("document_format", ["pdf", ".pdf", "PDF", "docx", ".DOCX"])
def test_enabled_formats_in_any_spelling(document_format):
    assert described(select_pictures([picture(0)], document_format, FilterPolicy())) == [0]


@pytest.mark.parametrize("document_format", ["pptx", "xlsx", "html", "md"])
def test_other_formats_are_skipped(document_format):
    decisions = select_pictures([picture(0), picture(1)], document_format, FilterPolicy())
    assert reasons(decisions) == {0: SkipReason.VISION_DISABLED_FOR_TYPE, 1: SkipReason.VISION_DISABLED_FOR_TYPE}


def test_enabled_formats_are_configurable():
    policy = FilterPolicy(enabled_formats=".pptx, xlsx")
    assert policy.enabled_formats == frozenset({"pptx", "xlsx"})
    assert described(select_pictures([picture(0)], "pptx", policy)) == [0]
    assert reasons(select_pictures([picture(0)], "pdf", policy)) == {0: SkipReason.VISION_DISABLED_FOR_TYPE}


@pytest.mark.parametrize("width, height, small", [
    (31, 31, True),  # both sides < 32
    (40, 60, True),  # area 2,400 < 2,500
    (50, 50, False),  # area 2,500
    (32, 100, False),
    (1000, 3, False),  # a rule line: one thin side alone is not "tiny"
])
def test_tiny_pictures(width, height, small):
    decisions = select_pictures([picture(0, width, height)], "pdf", FilterPolicy())
    assert reasons(decisions) == ({0: SkipReason.TOO_SMALL} if small else {})


def test_minimum_size_is_configurable():
    policy = FilterPolicy(min_side_px=100, min_area_px=0)
    assert reasons(select_pictures([picture(0, 99, 99), picture(1, 99, 100)], "pdf", policy)) == {
        0: SkipReason.TOO_SMALL}


def test_every_skip_has_a_reason_and_describe_has_none():
    pictures = [picture(0, 8, 8), picture(1, size_bytes=10**8), picture(2)]
    for decision in select_pictures(pictures, "pdf", FilterPolicy()):
        assert (decision.reason is None) == decision.describe


def test_reason_codes_are_the_documented_strings():
    assert {reason.value for reason in SkipReason} == {
        "max_images_per_document", "too_many_images", "image_too_large",
        "vision_disabled_for_type", "too_small"}


def test_policy_from_settings():
    settings = SimpleNamespace(
        vision_max_images_per_document=10, vision_skip_if_too_many_images=20,
        vision_skip_large_images=False, vision_max_image_size_mb=2.5,
        vision_enabled_formats=".pdf,.docx,.pptx", vision_min_image_side_px=16,
        vision_min_image_area_px=400)
    policy = FilterPolicy.from_settings(settings)
    assert policy == FilterPolicy(10, 20, False, 2.5, frozenset({"pdf", "docx", "pptx"}), 16, 400)
    assert policy.max_image_size_bytes == int(2.5 * 1024 * 1024)


def test_bad_policy_values_are_refused():
    with pytest.raises(ValueError, match="max_images_per_document"):
        FilterPolicy(max_images_per_document=-1)
    with pytest.raises(ValueError, match="max_image_size_mb"):
        FilterPolicy(max_image_size_mb=0)
