"""One store interface, two backends: a folder, and S3 against a real S3-protocol server (moto_server).

The same contract runs on both; the S3-only tests look at the bucket through the server's
own listing, and the pipeline tests have docling's extraction processes write into the bucket.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from docsight.client import full_outcome
from docsight.config import SettingsError, load_settings
from docsight.storage import (BlobNotFound, ContentStore, FileStore, StoreLocation, StoreUnavailable, open_store,
                              sha256_hex)
from s3_server import AVAILABLE, SKIP_REASON, S3Server

pytestmark = pytest.mark.skipif(not AVAILABLE, reason=SKIP_REASON)

BUCKET = "docsight-blobs"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(params=["folder", "s3"])
def store(request, tmp_path, s3) -> ContentStore:
    if request.param == "folder":
        return open_store(tmp_path / "store")
    return open_store(s3.location(f"s3://{BUCKET}/{uuid.uuid4().hex}"))


def test_a_blob_goes_in_once_and_comes_back(store):
    digest = store.put(b"picture bytes")
    assert digest == sha256_hex(b"picture bytes")
    assert store.put(b"picture bytes") == digest
    assert store.get(digest) == b"picture bytes" and digest in store
    assert store.get_text(store.put_text("markdown é ✓")) == "markdown é ✓"
    assert sha256_hex(b"never stored") not in store
    with pytest.raises(BlobNotFound):
        store.get(sha256_hex(b"never stored"))


@pytest.mark.parametrize("digest", ["../../etc/passwd", "/" + "0" * 63, "A" * 64, "0" * 63, "0" * 62 + "/.", ""])
def test_only_a_sha256_digest_becomes_a_key(store, digest):
    with pytest.raises(ValueError):
        store.get(digest)
    with pytest.raises(ValueError):
        digest in store  # noqa: B015 - the lookup itself must refuse


def test_the_async_calls_match_the_plain_ones(store):
    async def run():
        digest = await store.put_async(b"async bytes")
        assert await store.get_async(digest) == b"async bytes"
        with pytest.raises(BlobNotFound):
            await store.get_async(sha256_hex(b"absent"))
        return digest

    digest = asyncio.run(run())
    assert store.get(digest) == b"async bytes"


def test_many_writers_of_the_same_and_of_different_content(store):
    shared = os.urandom(200_000)
    own = [os.urandom(10_000) for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        digests = list(pool.map(store.put, [shared] * 8 + own))
    assert set(digests[:8]) == {sha256_hex(shared)}
    assert store.get(digests[0]) == shared
    assert [store.get(d) for d in digests[8:]] == own


def test_s3_keys_are_the_folder_layout_under_the_prefix(s3, tmp_path):
    prefix = f"cluster-{uuid.uuid4().hex[:8]}"
    store = open_store(s3.location(f"s3://{BUCKET}/{prefix}/blobs"))
    digest = store.put(b"one picture")
    folder = FileStore(tmp_path)
    folder.put(b"one picture")
    assert [key for key in s3.keys(BUCKET) if key.startswith(prefix)] == [f"{prefix}/blobs/{digest[:2]}/{digest}"]
    assert folder.path_for(digest).relative_to(folder.root).as_posix() == f"{digest[:2]}/{digest}"
    # another prefix of the same bucket is another store
    assert digest not in open_store(s3.location(f"s3://{BUCKET}/{prefix}/other"))


def test_a_blob_already_in_the_bucket_is_not_uploaded_again(s3):
    store = open_store(s3.location(f"s3://{BUCKET}/{uuid.uuid4().hex}"))
    digest = store.put(b"a logo on every page")
    store.put(b"a logo on every page")
    store.put(b"a logo on every page")
    time.sleep(0.3)  # the server writes its request log line after answering
    log = re.sub(r"\x1b\[[0-9;]*m", "", s3.log_tail(200))  # the server colours some lines
    requests = [line for line in log.splitlines() if digest in line]
    assert sum('"PUT ' in line for line in requests) == 1, requests
    assert sum('"HEAD ' in line for line in requests) == 3, requests


def test_a_missing_bucket_and_an_unreachable_server_fail_with_the_store_named(s3):
    with pytest.raises(StoreUnavailable, match="does not exist"):
        open_store(s3.location("s3://no-such-bucket/x")).put(b"bytes")
    closed = StoreLocation(f"s3://{BUCKET}/x", endpoint="http://127.0.0.1:1", region="us-east-1",
                           access_key_id="k", secret_access_key="s")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=f"s3://{BUCKET}/x"):
        open_store(closed).put(b"bytes")
    assert time.monotonic() - started < 30  # fails; never hangs a worker


def test_an_outcome_sent_by_reference_is_read_from_the_bucket(s3):
    location = s3.location(f"s3://{BUCKET}/{uuid.uuid4().hex}")
    store = open_store(location)
    markdown_ref = store.put_text("# A long document")
    whole = {"document_id": "d1", "markdown": None, "markdown_ref": markdown_ref, "pictures": [{"index": 0}]}
    outcome_ref = store.put_text(json.dumps(whole))
    by_reference = {"document_id": "d1", "markdown": None, "pictures": None, "outcome_ref": outcome_ref}
    full = full_outcome(by_reference, location)
    assert full["markdown"] == "# A long document" and full["pictures"] == [{"index": 0}]
    assert full["outcome_ref"] == outcome_ref


def test_extraction_processes_write_pictures_into_the_bucket(s3, tmp_path):
    """docling, in the pool's own processes, stores every picture in S3: nothing in a local folder."""
    from PIL import Image

    from docsight.extraction import ExtractionPool

    folder = tmp_path / "doc"
    folder.mkdir()
    for number, color in enumerate(["red", "blue"]):
        Image.new("RGB", (120, 80), color).save(folder / f"p{number}.png")
    (folder / "doc.md").write_text("# Two pictures\n\n![red](p0.png)\n\nBetween.\n\n![blue](p1.png)\n")
    location = s3.location(f"s3://{BUCKET}/{uuid.uuid4().hex}")

    async def extract():
        with ExtractionPool(location, processes=1) as pool:
            return await pool.extract(folder / "doc.md", "text/markdown")

    result = asyncio.run(extract())
    store = open_store(location)
    assert len(result.pictures) == 2
    for number, picture in enumerate(result.pictures):
        assert picture.sha256 in store
        assert store.get(picture.sha256) == (folder / f"p{number}.png").read_bytes()
    assert not any(tmp_path.rglob("*/??/" + "?" * 64))  # no blob fell back to a folder


# ---- settings: DOCSIGHT_STORE_URL and its credentials --------------------------------------------------

def test_the_default_store_is_the_folder_of_store_dir(tmp_path):
    settings = load_settings(data_dir=tmp_path)
    assert settings.store_location == StoreLocation.folder(tmp_path / "store")
    assert isinstance(open_store(settings.store_location), FileStore)


def test_a_file_url_and_store_dir_name_one_folder(tmp_path):
    settings = load_settings(store_url=(tmp_path / "shared").as_uri())
    assert settings.store_dir == tmp_path / "shared"
    assert open_store(settings.store_location).location == str(tmp_path / "shared")


def test_an_s3_url_carries_endpoint_region_and_keys_but_never_shows_the_secret(s3):
    settings = load_settings(**{key.removeprefix("DOCSIGHT_").lower(): value
                                for key, value in s3.env(f"s3://{BUCKET}/from-settings").items()})
    location = settings.store_location
    assert (location.scheme, location.endpoint, location.region) == ("s3", s3.endpoint, "us-east-1")
    assert settings.store_secret_access_key not in repr(settings) + repr(location)
    store = open_store(location)
    assert store.get(store.put(b"through the settings")) == b"through the settings"


def test_a_gcs_url_opens_a_gcs_store_with_its_prefix():
    # no GCS server runs here: this checks the mapping, not a round trip
    store = open_store(StoreLocation("gs://docsight-bucket/blobs/v1", endpoint="http://127.0.0.1:4443"))
    assert type(store.store).__name__ == "GCSStore"
    assert store.store.prefix == "blobs/v1"
    assert store.store.config["bucket"] == "docsight-bucket"
    assert store.store.config["base_url"] == "http://127.0.0.1:4443"


@pytest.mark.parametrize("url, problem", [
    ("ftp://host/folder", "not supported"), ("s3://", "no bucket"), ("s3:///prefix", "no bucket"),
    ("file://server/share", "absolute path"), ("s3://bucket/p?x=1", "no query"),
])
def test_a_bad_store_url_stops_with_the_reason(url, problem):
    with pytest.raises(SettingsError, match=problem):
        load_settings(store_url=url)


def test_the_store_url_is_read_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCSIGHT_STORE_URL", f"s3://{BUCKET}/env")
    monkeypatch.setenv("DOCSIGHT_STORE_ENDPOINT", "http://127.0.0.1:9000")
    from docsight.config.settings import Settings

    location = Settings().store_location
    assert (location.url, location.endpoint) == (f"s3://{BUCKET}/env", "http://127.0.0.1:9000")
    assert Path(Settings().store_dir) == Path("var/store")  # the folder setting stays what it was
