"""Where the store is (``DOCSIGHT_STORE_URL``) and how to open it.

A ``StoreLocation`` is plain data, picklable, so the extraction processes open
the same store as the worker that spawned them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .base import ContentStore

SCHEMES = ("file", "s3", "gs")


@dataclass(frozen=True)
class StoreLocation:
    """``url`` is ``file:///path``, ``s3://bucket/prefix`` or ``gs://bucket/prefix``.

    ``endpoint``: an S3-compatible server (MinIO, Ceph, R2, ...) or a GCS base URL;
    ``http://`` is allowed for it. Credentials left empty come from each cloud's own
    chain (``AWS_*`` variables, web identity, instance roles; ``GOOGLE_APPLICATION_CREDENTIALS``).
    """

    url: str
    endpoint: str | None = None
    region: str | None = None
    access_key_id: str = field(default="", repr=False)
    secret_access_key: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        parse_store_url(self.url)  # a bad URL fails here, with the reason

    @property
    def scheme(self) -> str:
        return parse_store_url(self.url)[0]

    @property
    def path(self) -> Path:
        """The folder of a ``file://`` store."""
        scheme, path, _ = parse_store_url(self.url)
        if scheme != "file":
            raise ValueError(f"{self.url} is not a folder")
        return Path(path)

    @classmethod
    def folder(cls, path: Path | str) -> "StoreLocation":
        return cls(Path(path).resolve().as_uri())

    @classmethod
    def from_settings(cls, settings) -> "StoreLocation":
        """From ``DOCSIGHT_STORE_URL`` and its credentials, or the folder ``DOCSIGHT_STORE_DIR``."""
        if not settings.store_url:
            return cls.folder(settings.store_dir)
        if parse_store_url(settings.store_url)[0] == "file":
            return cls.folder(parse_store_url(settings.store_url)[1])
        return cls(settings.store_url, endpoint=settings.store_endpoint, region=settings.store_region,
                   access_key_id=settings.store_access_key_id,
                   secret_access_key=settings.store_secret_access_key)


def parse_store_url(url: str) -> tuple[str, str, str]:
    """``(scheme, bucket or folder, prefix)``; a bare path counts as ``file``. ValueError says what is wrong."""
    if not url:
        raise ValueError("the store URL is empty")
    if "://" not in url:
        return "file", url, ""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"store URL {url!r}: scheme {scheme!r} is not supported; "
                         "use file:///path, s3://bucket/prefix or gs://bucket/prefix")
    if parts.query or parts.fragment:
        raise ValueError(f"store URL {url!r}: no query or fragment; set endpoint and credentials apart")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"store URL {url!r}: a file URL names an absolute path, file:///path")
        return "file", unquote(parts.path), ""
    if not parts.netloc:
        raise ValueError(f"store URL {url!r}: no bucket")
    return scheme, parts.netloc, parts.path.strip("/")


def open_store(where: "StoreLocation | Path | str") -> ContentStore:
    """The store at ``where``: a ``StoreLocation``, a URL, or a folder path."""
    location = where if isinstance(where, StoreLocation) else (
        StoreLocation(where) if isinstance(where, str) and "://" in where else StoreLocation.folder(where))
    if location.scheme == "file":
        from .blob_store import FileStore

        return FileStore(location.path)
    from .object_store import ObjectStore

    return ObjectStore(location)
