"""Which pictures of a document are worth a Gemini call: pure rules, each skip with a reason code."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Iterable, Sequence

BYTES_PER_MB = 1024 * 1024


class SkipReason(StrEnum):
    VISION_DISABLED_FOR_TYPE = "vision_disabled_for_type"
    TOO_MANY_IMAGES = "too_many_images"
    TOO_SMALL = "too_small"
    IMAGE_TOO_LARGE = "image_too_large"
    MAX_IMAGES_PER_DOCUMENT = "max_images_per_document"


@dataclass(frozen=True)
class PictureFacts:
    index: int  # 0-based, reading order
    width: int
    height: int
    size_bytes: int


@dataclass(frozen=True)
class Decision:
    index: int
    describe: bool
    reason: SkipReason | None = None  # set exactly when describe is False


def normalise_format(document_format: str) -> str:
    """".PDF", "pdf" and "Pdf" are one format: "pdf"."""
    return document_format.strip().lower().lstrip(".")


@dataclass(frozen=True)
class FilterPolicy:
    max_images_per_document: int = 50  # 0: no cap
    skip_if_too_many_images: int = 100  # 0: never skip a whole document for this
    skip_large_images: bool = True
    max_image_size_mb: float = 5.0  # MiB of the stored picture bytes
    enabled_formats: frozenset[str] = field(default_factory=lambda: frozenset({"pdf", "docx"}))
    # Icons, bullets and spacer pixels say nothing a description could use.
    min_side_px: int = 32  # skip when both sides are below this
    min_area_px: int = 2_500  # skip when width x height is below this

    def __post_init__(self) -> None:
        for name in ("max_images_per_document", "skip_if_too_many_images", "min_side_px", "min_area_px"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.max_image_size_mb <= 0:
            raise ValueError(f"max_image_size_mb must be positive, got {self.max_image_size_mb}")
        object.__setattr__(self, "enabled_formats", parse_formats(self.enabled_formats))

    @property
    def max_image_size_bytes(self) -> int:
        return int(self.max_image_size_mb * BYTES_PER_MB)

    def vision_enabled_for(self, document_format: str) -> bool:
        return normalise_format(document_format) in self.enabled_formats

    @classmethod
    def from_settings(cls, settings) -> "FilterPolicy":
        """Built from docsight's Settings (field names as proposed for config/settings.py)."""
        return cls(
            max_images_per_document=settings.vision_max_images_per_document,
            skip_if_too_many_images=settings.vision_skip_if_too_many_images,
            skip_large_images=settings.vision_skip_large_images,
            max_image_size_mb=settings.vision_max_image_size_mb,
            enabled_formats=parse_formats(settings.vision_enabled_formats),
            min_side_px=settings.vision_min_image_side_px,
            min_area_px=settings.vision_min_image_area_px,
        )


def parse_formats(formats: str | Iterable[str]) -> frozenset[str]:
    """"pdf,.docx" or ["pdf", ".DOCX"] -> frozenset({"pdf", "docx"})."""
    items = formats.split(",") if isinstance(formats, str) else formats
    return frozenset(normalise_format(item) for item in items if item.strip())


def select_pictures(pictures: Sequence[PictureFacts], document_format: str,
                    policy: FilterPolicy = FilterPolicy()) -> list[Decision]:
    """One Decision per picture, in reading order.

    Document-wide rules come first (format, too many pictures). Then each picture is
    checked for size; ``max_images_per_document`` counts only the pictures that pass
    those checks, so skipped icons do not use up the document's budget of calls.
    """
    ordered = sorted(pictures, key=lambda picture: picture.index)
    if not policy.vision_enabled_for(document_format):
        return _skip_all(ordered, SkipReason.VISION_DISABLED_FOR_TYPE)
    if policy.skip_if_too_many_images and len(ordered) > policy.skip_if_too_many_images:
        return _skip_all(ordered, SkipReason.TOO_MANY_IMAGES)

    decisions = []
    described = 0
    for picture in ordered:
        reason = picture_skip_reason(picture, policy)
        if reason is None and policy.max_images_per_document and described >= policy.max_images_per_document:
            reason = SkipReason.MAX_IMAGES_PER_DOCUMENT
        if reason is None:
            described += 1
        decisions.append(Decision(picture.index, describe=reason is None, reason=reason))
    return decisions


def picture_skip_reason(picture: PictureFacts, policy: FilterPolicy) -> SkipReason | None:
    """The rules that look at one picture alone."""
    both_sides_small = picture.width < policy.min_side_px and picture.height < policy.min_side_px
    if both_sides_small or picture.width * picture.height < policy.min_area_px:
        return SkipReason.TOO_SMALL
    if policy.skip_large_images and picture.size_bytes > policy.max_image_size_bytes:
        return SkipReason.IMAGE_TOO_LARGE
    return None


def _skip_all(pictures: Sequence[PictureFacts], reason: SkipReason) -> list[Decision]:
    return [Decision(picture.index, describe=False, reason=reason) for picture in pictures]
