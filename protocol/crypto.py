"""AES-GCM for personal data at rest, with a key file only the daemon's user can read."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol.errors import StoreError
from protocol.files import fsync_dir

logger = logging.getLogger(__name__)

_VERSION = b"\x01"
_NONCE_BYTES = 12
KEY_MODE = 0o600


class DataKey:
    """A 256-bit AES-GCM key. Ciphertext layout: version(1) | nonce(12) | ciphertext+tag."""

    def __init__(self, key: bytes | None = None, *, path: Path | None = None) -> None:
        """key None: the key file at path, read by load() (constructors do no I/O)."""
        self._aead: AESGCM | None = None
        self.path = path
        if key is not None:
            self._use(key)

    def _use(self, key: bytes) -> None:
        if len(key) != 32:
            raise StoreError("data key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, path: Path) -> DataKey:
        """Read the key file, creating it (mode 0600) on first run; refuse a readable one."""
        key = cls(path=path)
        key.load()
        return key

    def load(self) -> None:
        """Read the key file at path, creating it (mode 0600) on first run; refuse a readable
        one."""
        path = self.path
        if path is None:
            raise StoreError("data key has no key file to load")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_MODE)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(AESGCM.generate_key(bit_length=256))
                f.flush()
                os.fsync(f.fileno())
            fsync_dir(path.parent)
            logger.info("created data key file", extra={"path": str(path)})
        problem = key_file_problem(path)
        if problem:
            raise StoreError(problem)
        self._use(path.read_bytes())

    @property
    def _cipher(self) -> AESGCM:
        if self._aead is None:
            raise StoreError("data key is not loaded")
        return self._aead

    def encrypt(self, plaintext: bytes, *, aad: bytes = b"") -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._cipher.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, *, aad: bytes = b"") -> bytes:
        if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _VERSION:
            raise StoreError("encrypted record is truncated or of an unknown version")
        nonce, body = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            return self._cipher.decrypt(nonce, body, aad)
        except InvalidTag as err:
            raise StoreError(
                "encrypted record failed authentication (wrong key or altered)"
            ) from err


def key_file_problem(path: Path) -> str | None:
    """Why this key file must not be used, or None if it is fine."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return f"key file {path} is missing"
    if not stat.S_ISREG(info.st_mode):
        return f"key file {path} is not a regular file"
    if info.st_mode & 0o077:
        return f"key file {path} has mode {stat.S_IMODE(info.st_mode):04o}; it must be 0600"
    if info.st_uid != os.geteuid():
        return f"key file {path} belongs to uid {info.st_uid}, not the daemon's user"
    if info.st_size != 32:
        return f"key file {path} holds {info.st_size} bytes, not a 256-bit key"
    return None
