"""The LDS files the kiosk reads (ICAO 9303 part 10) and how to parse them.

EF.COM (tag 60), DG1 (61: the MRZ, 5F1F), DG2 (75: biometric template, ISO/IEC 19794-5 face
record holding a JPEG or JPEG 2000 image), DG13 (6D: Vietnam's personal data, a layout the
Ministry of Public Security has not published; see docs/chip.md) and EF.SOD (77).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from edge.identity.chip.tlv import TlvError, encode, find, items, one, read_header

FIDS = {"COM": 0x011E, "DG1": 0x0101, "DG2": 0x0102, "DG13": 0x010D, "SOD": 0x011D}
CARD_ACCESS = 0x011C  # in the master file, readable without access control
DG_TAGS = {0x61: 1, 0x75: 2, 0x6D: 13}

# DG13 on Vietnamese cards: SEQUENCE { INTEGER field-number, value(s) }, as public readers
# document it (docs/chip.md, "DG13"). The numbers the kiosk parses; any other is kept raw.
DG13_FIELDS = {
    1: "id_number",
    2: "name",
    3: "date_of_birth",
    4: "sex",
    5: "nationality",
    6: "ethnicity",
    7: "religion",
    8: "home_town",
    9: "address",
    10: "features",
    11: "issue_date",
    12: "expiry_date",
    13: "parents",  # two strings: father's, then mother's name
    14: "spouse_name",
    15: "old_id",
}
DG13_DATES = {"date_of_birth", "issue_date", "expiry_date"}
PACE_OID_PREFIX = "0.4.0.127.0.7.2.2.4."  # id-PACE (BSI TR-03110 / ICAO 9303 part 11, 9.2)


class LdsError(ValueError):
    """A file that does not parse as the LDS says it should; `file` names it."""

    def __init__(self, file: str, detail: str) -> None:
        super().__init__(f"{file}: {detail}")
        self.file = file


def parse_com(data: bytes) -> list[int]:
    """EF.COM: the data group numbers the chip says it carries."""
    try:
        body = one(data, 0x60)
        tags = find(data, 0x5C) if body else None
    except TlvError as exc:
        raise LdsError("COM", str(exc)) from None
    return sorted(DG_TAGS.get(t, t) for t in (tags or b""))


def parse_dg1(data: bytes) -> str:
    """DG1: the MRZ as three 30-character lines (TD1)."""
    try:
        mrz = find(data, 0x5F1F)
    except TlvError as exc:
        raise LdsError("DG1", str(exc)) from None
    if mrz is None or len(mrz) != 90:
        raise LdsError("DG1", "no TD1 MRZ (5F1F of 90 characters)")
    text = mrz.decode("ascii", "replace")
    return "\n".join(text[i : i + 30] for i in (0, 30, 60))


@dataclass(frozen=True, slots=True)
class FaceImage:
    kind: str  # "jpeg" | "jpeg2000"
    data: bytes
    width: int
    height: int

    def __repr__(self) -> str:
        return f"FaceImage({self.kind}, {self.width}x{self.height}, <portrait hidden>)"


def parse_dg2(data: bytes) -> FaceImage:
    """DG2 down to the image: 75 / 7F61 / 7F60 / 5F2E (or 7F2E) = an ISO/IEC 19794-5 record:
    'FAC\\0', version, record length, face count, then a facial record (20-byte header,
    8 bytes per feature point, 12-byte image information) and the image."""
    try:
        block = find(data, 0x5F2E) or find(data, 0x7F2E)
    except TlvError as exc:
        raise LdsError("DG2", str(exc)) from None
    if block is None or len(block) < 46 or block[:4] != b"FAC\x00":
        raise LdsError("DG2", "no ISO/IEC 19794-5 face record")
    points = int.from_bytes(block[18:20], "big")
    info = 14 + 20 + 8 * points
    if len(block) < info + 12:
        raise LdsError("DG2", "face record shorter than its header")
    data_type = block[info + 1]
    width = int.from_bytes(block[info + 2 : info + 4], "big")
    height = int.from_bytes(block[info + 4 : info + 6], "big")
    image = block[info + 12 :]
    kind = {0: "jpeg", 1: "jpeg2000"}.get(data_type)
    if kind is None:
        raise LdsError("DG2", f"image data type {data_type} is neither JPEG nor JPEG 2000")
    return FaceImage(kind, image, width, height)


@dataclass(frozen=True, slots=True)
class Dg13:
    fields: dict[str, str | None]  # the parsed fields (dates as ISO strings)
    raw: dict[int, list[str]]  # every numbered entry as read, parsed or not

    def __repr__(self) -> str:
        return "Dg13(<personal data hidden>)"


def _strings(value: bytes) -> list[str]:
    out: list[str] = []
    for tag, inner in items(value):
        if tag in (0x0C, 0x13, 0x16, 0x14):  # UTF8String, PrintableString, IA5String, T61
            out.append(inner.decode("utf-8", "replace"))
        elif tag == 0x30 or tag == 0x31:
            out.extend(_strings(inner))
    return out


def _entries(value: bytes, out: dict[int, list[str]]) -> None:
    for tag, inner in items(value):
        if tag not in (0x30, 0x31):
            continue
        first = next(items(inner), None)
        if first is not None and first[0] == 0x02 and len(first[1]) <= 2:
            number = int.from_bytes(first[1], "big")
            _, n, start = read_header(inner)
            out[number] = _strings(inner[start + n :])
        else:
            _entries(inner, out)


def _date(text: str) -> str | None:
    for fmt in ("%d/%m/%Y", "%d%m%Y", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text.strip(), fmt).date().isoformat()
        except ValueError:
            continue
    return None


def parse_dg13(data: bytes) -> Dg13:
    raw: dict[int, list[str]] = {}
    try:
        _entries(one(data, 0x6D), raw)
    except (TlvError, StopIteration) as exc:
        raise LdsError("DG13", str(exc)) from None
    fields: dict[str, str | None] = {}
    for number, name in DG13_FIELDS.items():
        values = raw.get(number) or []
        if name == "parents":
            fields["father_name"] = values[0] or None if values else None
            fields["mother_name"] = values[1] or None if len(values) > 1 else None
            continue
        value = values[0].strip() if values else ""
        fields[name] = (_date(value) if name in DG13_DATES else value) or None
    return Dg13(fields, raw)


def pace_offered(card_access: bytes) -> bool:
    """EF.CardAccess (a DER SET of SecurityInfos): does it list a PACE protocol?"""
    from asn1crypto.core import ObjectIdentifier

    try:
        for tag, info in items(one(card_access, 0x31)):
            first = next(items(info), None)
            if tag == 0x30 and first and first[0] == 0x06:
                oid = ObjectIdentifier.load(encode(0x06, first[1])).dotted
                if oid.startswith(PACE_OID_PREFIX):
                    return True
    except (TlvError, ValueError):
        return False
    return False
