"""The object-store backend: S3 (AWS or any S3-compatible server) and Google Cloud Storage, via obstore.

Keys are ``PREFIX/ab/abcd...`` as in the folder backend. A blob is written only
when a HEAD says it is absent: pictures repeat across documents, and a PUT of
the same bytes by two workers at once leaves the same object either way.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

import obstore
from obstore.exceptions import BaseError, NotFoundError

from .base import BlobNotFound, ContentStore, StoreUnavailable, blob_key, sha256_hex
from .location import StoreLocation, parse_store_url

# A call fails to the caller (and Kafka's redelivery) instead of hanging a worker.
CONNECT_TIMEOUT = timedelta(seconds=5)
REQUEST_TIMEOUT = timedelta(seconds=60)


def build_object_store(location: StoreLocation):
    """The obstore store for ``location``; the settings given win over the cloud's own environment."""
    from obstore.store import GCSStore, S3Store

    scheme, bucket, prefix = parse_store_url(location.url)
    client_options = {"connect_timeout": CONNECT_TIMEOUT, "timeout": REQUEST_TIMEOUT}
    if location.endpoint and location.endpoint.startswith("http://"):
        client_options["allow_http"] = True
    if scheme == "s3":
        config = {}
        if location.endpoint:
            config["endpoint"] = location.endpoint
        if location.region:
            config["region"] = location.region
        if location.access_key_id:
            config["access_key_id"] = location.access_key_id
            config["secret_access_key"] = location.secret_access_key
        return S3Store(bucket, prefix=prefix or None, config=config, client_options=client_options)
    if scheme == "gs":
        config = {"base_url": location.endpoint} if location.endpoint else {}
        return GCSStore(bucket, prefix=prefix or None, config=config, client_options=client_options)
    raise ValueError(f"{location.url} is not an object-store URL")


class ObjectStore(ContentStore):
    def __init__(self, location: StoreLocation) -> None:
        self.location = location.url
        self.store = build_object_store(location)

    @contextlib.contextmanager
    def _errors(self, digest: str):
        try:
            yield
        except (FileNotFoundError, NotFoundError):
            raise BlobNotFound(digest) from None
        except BaseError as error:
            # obstore's message carries a debug dump after its first line
            raise StoreUnavailable(f"{self.location}: {str(error).splitlines()[0]}") from error

    def _exists(self, digest: str) -> bool:
        try:
            with self._errors(digest):
                obstore.head(self.store, blob_key(digest))
        except BlobNotFound:
            return False
        return True

    def _write(self, digest: str, data: bytes) -> None:
        try:
            with self._errors(digest):
                obstore.put(self.store, blob_key(digest), data)  # a single PUT: atomic on S3 and GCS
        except BlobNotFound:
            raise self._no_bucket() from None

    def _no_bucket(self) -> StoreUnavailable:
        # a PUT answered "not found" has no bucket to go to
        return StoreUnavailable(f"{self.location}: the bucket does not exist (create it, or fix DOCSIGHT_STORE_URL)")

    def _read(self, digest: str) -> bytes:
        with self._errors(digest):
            return obstore.get(self.store, blob_key(digest)).bytes().to_bytes()

    async def get_async(self, digest: str) -> bytes:
        with self._errors(digest):
            result = await obstore.get_async(self.store, blob_key(digest))
            return (await result.bytes_async()).to_bytes()

    async def put_async(self, data: bytes) -> str:
        digest = sha256_hex(data)
        try:
            with self._errors(digest):
                await obstore.head_async(self.store, blob_key(digest))
        except BlobNotFound:
            try:
                with self._errors(digest):
                    await obstore.put_async(self.store, blob_key(digest), data)
            except BlobNotFound:
                raise self._no_bucket() from None
        return digest
