"""BAC keys and secure messaging (ICAO 9303 part 11, 4.3 and 9.8), DES/3DES flavour.

Every primitive is the `cryptography` library's: 3DES-CBC (TripleDES, under
cryptography.hazmat.decrepit in this version), single DES as TripleDES with an 8-byte key, SHA-1.
What is here is the ICAO glue only: the key derivation function, ISO 9797-1 padding method 2,
the retail MAC (ISO 9797-1 MAC algorithm 3 = single-DES CBC then 3DES on the last block) and the
DO'87/'97/'99/'8E wrapping of command and response APDUs. Checked against the worked example of
ICAO 9303 part 11 appendix D (tests/test_chip_sm.py). The reader (edge.identity.chip) and the
emulator (edge.sim.icao_card) share this module; the appendix D test is what checks it
independently of both.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

ZERO_IV = bytes(8)
KENC = 1
KMAC = 2


class SmError(Exception):
    """A response failed its MAC check, or its secure-messaging objects are malformed."""


def kdf(seed: bytes, counter: int) -> bytes:
    """ICAO 9303 part 11, 9.7.1: SHA-1(seed || counter), 16 bytes, DES parity bits adjusted."""
    digest = hashlib.sha1(seed + counter.to_bytes(4, "big")).digest()[:16]
    return bytes(_parity(b) for b in digest)


def _parity(byte: int) -> int:
    high = byte & 0xFE
    return high | (bin(high).count("1") + 1) % 2


def key_seed(mrz_information: bytes) -> bytes:
    """ICAO 9303 part 11, 9.7.2: the first 16 bytes of SHA-1 over MRZ_information."""
    return hashlib.sha1(mrz_information).digest()[:16]


def pad(data: bytes) -> bytes:
    """ISO 9797-1 padding method 2: 0x80 then zeros to a multiple of 8."""
    return data + b"\x80" + bytes((-len(data) - 1) % 8)


def unpad(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80"):
        raise SmError("bad ISO 9797-1 padding")
    return stripped[:-1]


def _cbc(key: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    # 2-key 3DES (K1 K2 K1) and single DES (K K K) given as the 24 bytes the library asks for.
    full = key * 3 if len(key) == 8 else key + key[:8]
    cipher = Cipher(TripleDES(full), modes.CBC(ZERO_IV))
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


def encrypt(key: bytes, data: bytes) -> bytes:
    """3DES-CBC, zero IV (data already padded)."""
    return _cbc(key, data)


def decrypt(key: bytes, data: bytes) -> bytes:
    return _cbc(key, data, decrypt=True)


def retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO 9797-1 MAC algorithm 3 with DES over padded data: 8 bytes."""
    message = pad(data)
    ka, kb = key[:8], key[8:16]
    last = _cbc(ka, message)[-8:]  # single DES = TripleDES with one 8-byte key
    inner = _cbc(kb, last, decrypt=True)
    return _cbc(ka, inner)


def session_keys(seed: bytes) -> tuple[bytes, bytes]:
    return kdf(seed, KENC), kdf(seed, KMAC)


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n < 0x100:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + value


def _parse_dos(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        if i + 2 > len(data):
            raise SmError("truncated secure-messaging object")
        tag, n = data[i], data[i + 1]
        i += 2
        if n == 0x81:
            n, i = data[i], i + 1
        elif n == 0x82:
            n, i = int.from_bytes(data[i : i + 2], "big"), i + 2
        elif n > 0x82:
            raise SmError("bad length in a secure-messaging object")
        if i + n > len(data):
            raise SmError("truncated secure-messaging object")
        out[tag] = data[i : i + n]
        i += n
    return out


def _le_bytes(le: int | None, extended: bool) -> bytes:
    if le is None:
        return b""
    if extended:
        return (le & 0xFFFF).to_bytes(2, "big")
    return bytes([le & 0xFF])


class SecureMessaging:
    """One side's SM state: KS_enc, KS_mac and the send sequence counter (8 bytes)."""

    def __init__(self, ks_enc: bytes, ks_mac: bytes, ssc: bytes) -> None:
        self.ks_enc = ks_enc
        self.ks_mac = ks_mac
        self.ssc = int.from_bytes(ssc, "big")

    def _next(self) -> bytes:
        self.ssc = (self.ssc + 1) % (1 << 64)
        return self.ssc.to_bytes(8, "big")

    # --- the terminal's side --------------------------------------------------------------
    def protect(
        self, header: bytes, data: bytes = b"", le: int | None = None, *, extended: bool = False
    ) -> bytes:
        """A plain command (CLA INS P1 P2, data, Le) as an SM APDU. Le 0 means 'all' (256 or
        65536); extended=True writes Lc/Le on 3/2 bytes as readers do for long reads."""
        cla, ins, p1, p2 = header
        masked = bytes([cla | 0x0C, ins, p1, p2])
        body = b""
        if data:
            odd = ins & 1
            if odd:  # DO'85: odd INS carries BER-TLV data, not padded
                body += _tlv(0x85, encrypt(self.ks_enc, pad(data)))
            else:
                body += _tlv(0x87, b"\x01" + encrypt(self.ks_enc, pad(data)))
        if le is not None:
            body += _tlv(0x97, _le_bytes(le, extended))
        mac = retail_mac(self.ks_mac, self._next() + pad(masked) + body)
        body += _tlv(0x8E, mac)
        if extended:
            return masked + b"\x00" + len(body).to_bytes(2, "big") + body + b"\x00\x00"
        return masked + bytes([len(body)]) + body + b"\x00"

    def unprotect(self, response: bytes) -> tuple[bytes, int]:
        """An SM response (data + SW) to (plain data, plain SW); SmError if its MAC is wrong."""
        if len(response) < 2:
            raise SmError("response shorter than a status word")
        body, sw = response[:-2], int.from_bytes(response[-2:], "big")
        if not body:  # an error the card answered in plain (e.g. 6988, 6A82)
            return b"", sw
        dos = _parse_dos(body)
        if 0x8E not in dos:
            raise SmError("response without a MAC")
        covered = body[: body.rindex(b"\x8e\x08" + dos[0x8E])]
        if not hmac.compare_digest(retail_mac(self.ks_mac, self._next() + covered), dos[0x8E]):
            raise SmError("response MAC does not match")
        plain_sw = int.from_bytes(dos[0x99], "big") if 0x99 in dos else sw
        data = b""
        if 0x87 in dos:
            if dos[0x87][:1] != b"\x01":
                raise SmError("DO'87 without padding indicator 01")
            data = unpad(decrypt(self.ks_enc, dos[0x87][1:]))
        return data, plain_sw

    # --- the card's side (the emulator) ---------------------------------------------------
    def open_command(self, apdu: bytes) -> tuple[bytes, bytes, int | None]:
        """An SM command to (plain header, plain data, Le); SmError if its MAC is wrong."""
        header, body, _, _ = parse_apdu(apdu)
        dos = _parse_dos(body)
        if 0x8E not in dos:
            raise SmError("command without a MAC")
        covered = body[: body.rindex(b"\x8e\x08" + dos[0x8E])]
        if not hmac.compare_digest(
            retail_mac(self.ks_mac, self._next() + pad(header) + covered), dos[0x8E]
        ):
            raise SmError("command MAC does not match")
        data = b""
        if 0x87 in dos:
            data = unpad(decrypt(self.ks_enc, dos[0x87][1:]))
        elif 0x85 in dos:
            data = unpad(decrypt(self.ks_enc, dos[0x85]))
        le = None
        if 0x97 in dos:
            raw = int.from_bytes(dos[0x97], "big") if dos[0x97] else 0
            le = raw or (65536 if len(dos[0x97]) == 2 else 256)
        return bytes([header[0] & ~0x0C & 0xFF]) + header[1:], data, le

    def seal_response(self, data: bytes, sw: int) -> bytes:
        body = b""
        if data:
            body += _tlv(0x87, b"\x01" + encrypt(self.ks_enc, pad(data)))
        body += _tlv(0x99, sw.to_bytes(2, "big"))
        mac = retail_mac(self.ks_mac, self._next() + body)
        return body + _tlv(0x8E, mac) + b"\x90\x00"


def parse_apdu(apdu: bytes) -> tuple[bytes, bytes, int | None, bool]:
    """A command APDU (ISO 7816-4 cases 1-4, short or extended) to (header, data, Le, extended).
    Le 0 is returned as 256 (short) or 65536 (extended): 'as many as there are'."""
    if len(apdu) < 4:
        raise SmError("APDU shorter than its header")
    header, rest = apdu[:4], apdu[4:]
    if not rest:
        return header, b"", None, False
    if len(rest) == 1:
        return header, b"", rest[0] or 256, False
    if rest[0] != 0:
        n = rest[0]
        data = rest[1 : 1 + n]
        if len(data) != n or len(rest) > n + 2:
            raise SmError("APDU length does not match Lc")
        tail = rest[1 + n :]
        return header, data, (tail[0] or 256) if tail else None, False
    if len(rest) == 3:
        return header, b"", int.from_bytes(rest[1:3], "big") or 65536, True
    n = int.from_bytes(rest[1:3], "big")
    data = rest[3 : 3 + n]
    tail = rest[3 + n :]
    if len(data) != n or len(tail) not in (0, 2):
        raise SmError("APDU length does not match extended Lc")
    return header, data, (int.from_bytes(tail, "big") or 65536) if tail else None, True
