"""Settings, the token rule and the blob store (no broker)."""

import pytest

from docsight.config import SettingsError, load_settings
from docsight.storage import BlobNotFound, BlobStore, sha256_hex
from docsight.cost.tokens import image_tokens, text_tokens


def test_settings_read_the_seed_names(monkeypatch):
    monkeypatch.setenv("VISION_RATE_LIMIT_PER_MINUTE", "120")
    monkeypatch.setenv("VISION_MAX_CONCURRENT_PER_CONSUMER", "7")
    monkeypatch.setenv("GEMINI_MODEL", "gemini-2.5-flash-lite")
    settings = load_settings()
    assert settings.vision_rate_limit_per_minute == 120
    assert settings.vision_max_concurrent_per_consumer == 7
    assert settings.gemini_model == "gemini-2.5-flash-lite"
    assert settings.store_dir == settings.data_dir / "store"


def test_a_bad_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("VISION_MAX_CONCURRENT_PER_CONSUMER", "0")
    with pytest.raises(SettingsError, match="VISION_MAX_CONCURRENT_PER_CONSUMER"):
        load_settings()


def test_exactly_once_is_refused_on_the_embedded_broker(monkeypatch):
    monkeypatch.setenv("DOCSIGHT_EMBEDDED_BROKER", "true")
    monkeypatch.setenv("DOCSIGHT_PROCESSING_GUARANTEE", "exactly_once")
    with pytest.raises(SettingsError, match="exactly_once"):
        load_settings()


def test_api_key_is_not_in_the_settings_repr(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "secret-key-123")
    assert "secret-key-123" not in repr(load_settings())


@pytest.mark.parametrize("size, media_resolution, tokens", [
    ((320, 200), None, 258), ((384, 384), None, 258), ((385, 100), None, 258),
    ((768, 768), None, 258), ((769, 768), None, 516), ((1600, 1200), None, 3 * 2 * 258),
    ((1600, 1200), "LOW", 64), ((1600, 1200), "MEDIA_RESOLUTION_MEDIUM", 256), ((100, 100), "LOW", 64),
])
def test_image_tokens_follow_the_tile_rule(size, media_resolution, tokens):
    assert image_tokens(*size, media_resolution) == tokens


def test_text_tokens_estimate():
    assert text_tokens("") == 0
    assert text_tokens("abcd" * 10) == 10


def test_blob_store_round_trip_and_dedupe(tmp_path):
    store = BlobStore(tmp_path)
    digest = store.put(b"picture")
    assert digest == sha256_hex(b"picture") and store.put(b"picture") == digest
    assert store.get(digest) == b"picture" and digest in store
    assert store.get_text(store.put_text("é")) == "é"
    with pytest.raises(BlobNotFound):
        store.get("0" * 64)


@pytest.mark.parametrize("digest", ["../etc/passwd", "/abs", "AB" * 32, "a" * 63])
def test_blob_store_refuses_anything_but_a_digest(tmp_path, digest):
    with pytest.raises(ValueError):
        BlobStore(tmp_path).path_for(digest)


def test_readme_documents_every_setting():
    from pathlib import Path

    from docsight.config.settings import settings_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert settings_table() in readme, "regenerate the README's configuration table from config/settings.py"
