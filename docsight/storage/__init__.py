"""Content-addressed blob store for picture bytes and document markdown.

Picture bytes never travel through Kafka: events carry the SHA-256 of the
bytes and workers read them from here. The default backend is a directory
shared by the workers (a local path, or a network file system in a cluster).
"""

from .blob_store import BlobNotFound, BlobStore, sha256_hex

__all__ = ["BlobStore", "BlobNotFound", "sha256_hex"]
