"""The device's serial number, and checks of the keys and certificates provisioning handles."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge.errors import BadInput


def device_serial(explicit: str | None = None) -> str:
    """The Pi's serial number (what central's claim allowlists); elsewhere the machine id."""
    if explicit:
        return explicit
    for source in (Path("/proc/device-tree/serial-number"), Path("/etc/machine-id")):
        try:
            value = source.read_text().strip("\x00\n ")
        except OSError:
            continue
        if value:
            return value[:64]
    return platform.node()[:64] or "unknown"


def _load_public_key(path: Path) -> bytes:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as err:
        raise BadInput(f"{path} is not a PEM public key: {err}") from err
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise BadInput(f"{path} is not an ECDSA P-256 public key")
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()
