"""The one interface every store of picture bytes and markdown implements.

Blobs are immutable and named by the SHA-256 of their content, so a backend
needs only three operations on a key (read, write, exists): writing the same
content twice, from any number of workers at once, is harmless.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from abc import ABC, abstractmethod

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class BlobNotFound(KeyError):
    """No blob with that digest is in the store."""


class StoreUnavailable(OSError):
    """The store could not be reached or refused the request (after the backend's own retries)."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """The digest itself, or ValueError: only a SHA-256 hex digest may become a key or a path."""
    if not isinstance(digest, str) or not _HEX_DIGEST.fullmatch(digest):
        raise ValueError(f"not a SHA-256 hex digest: {digest!r}")
    return digest


def blob_key(digest: str) -> str:
    """``ab/abcd...``: the same two-character sharding in every backend, so a store can be copied across."""
    check_digest(digest)
    return f"{digest[:2]}/{digest}"


class ContentStore(ABC):
    """Content-addressed store: ``put`` returns the digest, ``get`` reads it back.

    Backends implement ``_read``, ``_write`` and ``_exists`` for a checked digest; the
    digest check, deduplication and text helpers live here once.
    """

    #: where the blobs are, for messages (a folder, or an s3:// or gs:// URL)
    location: str

    @abstractmethod
    def _read(self, digest: str) -> bytes:
        """The blob's bytes; ``BlobNotFound`` when there is none."""

    @abstractmethod
    def _write(self, digest: str, data: bytes) -> None:
        """Store ``data`` under ``digest`` atomically: a reader sees all of it or nothing."""

    @abstractmethod
    def _exists(self, digest: str) -> bool:
        ...

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        if not self._exists(digest):  # the same picture in many documents is written once
            self._write(digest, data)
        return digest

    def put_text(self, text: str) -> str:
        return self.put(text.encode("utf-8"))

    def get(self, digest: str) -> bytes:
        return self._read(check_digest(digest))

    def get_text(self, digest: str) -> str:
        return self.get(digest).decode("utf-8")

    def __contains__(self, digest: str) -> bool:
        return self._exists(check_digest(digest))

    # An object store answers over the network: agents on the event loop await these instead.
    async def get_async(self, digest: str) -> bytes:
        return await asyncio.to_thread(self.get, digest)

    async def put_async(self, data: bytes) -> str:
        return await asyncio.to_thread(self.put, data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"
