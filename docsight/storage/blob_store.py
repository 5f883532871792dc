"""A directory of immutable blobs named by the SHA-256 of their content."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class BlobNotFound(KeyError):
    """No blob with that digest is in the store."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Content-addressed store: ``put`` returns the digest, ``get`` reads it back.

    Writes are atomic (temp file + rename), so concurrent writers of the same
    content from several processes are harmless: the content is identical.
    Digests are validated before they become paths, so nothing can be read or
    written outside ``root``.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, digest: str) -> Path:
        if not _HEX_DIGEST.fullmatch(digest):
            raise ValueError(f"not a SHA-256 hex digest: {digest!r}")
        path = self.root / digest[:2] / digest
        # a shard folder replaced by a symlink must not lead reads or writes out of the root
        if not path.parent.resolve().is_relative_to(self.root):
            raise ValueError(f"blob store shard {path.parent} leads outside {self.root}")
        return path

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        target = self.path_for(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def put_text(self, text: str) -> str:
        return self.put(text.encode("utf-8"))

    def get(self, digest: str) -> bytes:
        try:
            return self.path_for(digest).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    def get_text(self, digest: str) -> str:
        return self.get(digest).decode("utf-8")

    def __contains__(self, digest: str) -> bool:
        return self.path_for(digest).exists()
