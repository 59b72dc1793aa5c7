"""VietQR payment payloads: EMVCo merchant-presented QR with the NAPAS GUID, CRC-16/CCITT-FALSE.

Layout (each element is ID(2) LENGTH(2) VALUE): 00 "01" payload format; 01 "11" static or
"12" with an amount; 38 merchant account (00 GUID "A000000727", 01 beneficiary: 00 acquirer
BIN, 01 account or card number; 02 service "QRIBFTTA" to an account or "QRIBFTTC" to a card);
53 "704" (VND); 54 amount; 58 "VN"; 62 additional data (08 purpose); 63 CRC of everything
before it including "6304", four upper-case hex digits.
"""

from __future__ import annotations

import re
import unicodedata

from edge.errors import BadInput

NAPAS_GUID = "A000000727"
SERVICE_TO_ACCOUNT = "QRIBFTTA"
SERVICE_TO_CARD = "QRIBFTTC"
CURRENCY_VND = "704"
_PURPOSE_OK = re.compile(r"[^A-Za-z0-9 .,\-/]")


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def tlv(tag: str, value: str) -> str:
    length = len(value)  # EMVCo counts characters, not bytes
    if length > 99:
        raise BadInput(f"VietQR element {tag} is longer than 99 characters")
    return f"{tag}{length:02d}{value}"


def with_crc(body: str) -> str:
    """Append the CRC element (63, length 04) computed over the body and '6304'."""
    body += "6304"
    return body + f"{crc16_ccitt_false(body.encode('utf-8')):04X}"


def check_crc(payload: str) -> bool:
    return len(payload) > 8 and payload[-8:-4] == "6304" and with_crc(payload[:-8]) == payload


def ascii_purpose(text: str) -> str:
    """Banks show the note as plain ASCII: drop the diacritics (đ -> d), keep it short."""
    text = text.replace("đ", "d").replace("Đ", "D")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"\s+", " ", _PURPOSE_OK.sub(" ", text)).strip()[:25]


def payment_payload(
    *,
    bank_bin: str,
    account: str,
    amount_vnd: int | None = None,
    purpose: str = "",
    to_card: bool = False,
) -> str:
    """The text to put in a VietQR code; with an amount it is a one-off (dynamic) code."""
    if not re.fullmatch(r"[0-9]{6}", bank_bin):
        raise BadInput("VietQR bank BIN must be 6 digits")
    if not re.fullmatch(r"[0-9A-Za-z]{1,19}", account):
        raise BadInput("VietQR account must be 1-19 letters or digits")
    if amount_vnd is not None and not 0 < amount_vnd <= 9_999_999_999_999:
        raise BadInput("VietQR amount must be a positive number of dong")
    beneficiary = tlv("00", bank_bin) + tlv("01", account)
    merchant = (
        tlv("00", NAPAS_GUID)
        + tlv("01", beneficiary)
        + tlv("02", SERVICE_TO_CARD if to_card else SERVICE_TO_ACCOUNT)
    )
    body = tlv("00", "01") + tlv("01", "12" if amount_vnd else "11") + tlv("38", merchant)
    body += tlv("53", CURRENCY_VND)
    if amount_vnd:
        body += tlv("54", str(amount_vnd))
    body += tlv("58", "VN")
    note = ascii_purpose(purpose)
    if note:
        body += tlv("62", tlv("08", note))
    return with_crc(body)


def parse(payload: str) -> dict[str, str]:
    """Top-level elements of a payload whose CRC is right (nested templates left as text)."""
    if not check_crc(payload):
        raise BadInput("VietQR payload CRC does not match (mã thanh toán bị lỗi)")
    elements: dict[str, str] = {}
    at = 0
    while at < len(payload):
        tag, length = payload[at : at + 2], payload[at + 2 : at + 4]
        if not length.isdigit():
            raise BadInput("VietQR payload is malformed (mã thanh toán bị lỗi)")
        elements[tag] = payload[at + 4 : at + 4 + int(length)]
        at += 4 + int(length)
    return elements
