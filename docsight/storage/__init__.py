"""Content-addressed store for picture bytes and document markdown.

Picture bytes never travel through Kafka: events carry the SHA-256 of the
bytes and workers read them from here. One interface (``ContentStore``), two
backends: a folder every worker shares (``FileStore``, also known as
``BlobStore``), or an object store, S3 or GCS (``ObjectStore``), chosen by
``DOCSIGHT_STORE_URL`` (see ``open_store``).
"""

from .base import BlobNotFound, ContentStore, StoreUnavailable, sha256_hex
from .blob_store import BlobStore, FileStore
from .location import StoreLocation, open_store, parse_store_url

__all__ = ["BlobNotFound", "BlobStore", "ContentStore", "FileStore", "StoreLocation", "open_store",
           "StoreUnavailable", "parse_store_url", "sha256_hex"]
