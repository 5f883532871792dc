"""The filesystem backend: a folder of immutable blobs named by the SHA-256 of their content."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .base import BlobNotFound, ContentStore, check_digest, sha256_hex

__all__ = ["BlobNotFound", "BlobStore", "FileStore", "sha256_hex"]


class FileStore(ContentStore):
    """A folder, local or a network file system that every worker mounts at the same path.

    Writes are atomic (temp file + rename), so concurrent writers of the same
    content from several processes are harmless: the content is identical.
    Digests are validated before they become paths, so nothing can be read or
    written outside ``root``.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.location = str(self.root)

    def path_for(self, digest: str) -> Path:
        check_digest(digest)
        path = self.root / digest[:2] / digest
        # a shard folder replaced by a symlink must not lead reads or writes out of the root
        if not path.parent.resolve().is_relative_to(self.root):
            raise ValueError(f"blob store shard {path.parent} leads outside {self.root}")
        return path

    def _exists(self, digest: str) -> bool:
        return self.path_for(digest).exists()

    def _write(self, digest: str, data: bytes) -> None:
        target = self.path_for(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _read(self, digest: str) -> bytes:
        try:
            return self.path_for(digest).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(digest) from None


# The name every caller has used since the first release: the filesystem backend.
BlobStore = FileStore
