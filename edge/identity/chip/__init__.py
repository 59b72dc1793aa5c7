"""Reading the chip of a Vietnamese ID card (ICAO 9303 eMRTD applet) with passive authentication.

read_chip(reader, key, trust) selects the applet, opens BAC secure messaging from the MRZ key,
reads EF.COM, DG1, DG2, DG13 and EF.SOD, and checks them against the SOD and the CSCA trust list
(edge.identity.chip.pa). The card offers PACE (EF.CardAccess) on some series: `cryptography`
does not expose the elliptic-curve point addition PACE's generic mapping needs, so the kiosk
uses BAC, which the cards accept as well (docs/chip.md). Nothing of what is read is kept
after a failure; the portrait stays in RAM (never written, hidden from repr).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edge.identity.cccd import CardError
from edge.identity.chip import lds, pa, sm
from edge.identity.chip.pa import TrustList
from edge.identity.chip.tlv import TlvError, read_header
from edge.identity.mrz import MrzInvalid, MrzKey, parse_td1
from edge.ports.cardreader import CardReader, CardRemoved, CardSession, NoCard, NoReader
from edge.texts import N_, Text

__all__ = ["ChipError", "ChipReading", "TrustList", "error_text", "read_chip"]

EMRTD_AID = bytes.fromhex("A0000002471001")
SHORT_CHUNK = 0xDF  # 223: a short-Le read whose SM response still fits in 256 bytes
EXTENDED_CHUNK = 0x0800

BAC_REFUSED = N_(
    "The card's chip does not match the details read from the back of the card. "
    "Turn the card over so the camera can read the back again."
)
CHIP_UNREADABLE = N_("The card's chip could not be read. Please ask the staff for help.")
NOT_EMRTD = N_("This card has no chip the kiosk can read. Please use the QR code on the card.")
NO_READER = N_("The card reader is not working. Please ask the staff for help.")
NO_CARD = N_("No card was found on the reader. Lay the card flat on the reader and keep it still.")
CARD_REMOVED = N_(
    "The card was moved off the reader before the reading finished. "
    "Lay it back on the reader and keep it still."
)
NOT_GENUINE = N_("The card's chip data could not be confirmed as genuine. Please ask the staff.")


class ChipError(CardError):
    """The chip could not be read; `rule` is the stable machine code, `text` is for the citizen."""

    code = "chip_error"

    def __init__(self, rule: str, text: str, message_en: str) -> None:
        super().__init__(Text(text), f"chip: {message_en} ({rule})")
        self.rule = rule


def error_text(exc: BaseException) -> Text:
    """The citizen-facing text for an error of the card-reader port or of the chip reading."""
    if isinstance(exc, CardError):
        return exc.text
    if isinstance(exc, CardRemoved):
        return Text(CARD_REMOVED)
    if isinstance(exc, NoCard):
        return Text(NO_CARD)
    if isinstance(exc, NoReader):
        return Text(NO_READER)
    return Text(CHIP_UNREADABLE)


@dataclass(repr=False)
class ChipReading:
    fields: dict[str, Any]
    portrait: np.ndarray | None  # BGR, RAM only
    portrait_kind: str | None
    passive_auth: str  # "valid" | "invalid"
    reason: str
    development: bool  # validated by a development CSCA (the simulated card)
    data_groups_read: list[str]
    access: str  # "BAC"
    pace_offered: bool
    timings_ms: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        h, w = self.portrait.shape[:2] if self.portrait is not None else (None, None)
        return {
            **self.fields,
            "passive_auth": self.passive_auth,
            "reason": self.reason,
            "development": self.development,
            "portrait": {"found": self.portrait is not None, "width": w, "height": h},
            "data_groups_read": list(self.data_groups_read),
            "access": self.access,
            "pace_offered": self.pace_offered,
            "timings_ms": dict(self.timings_ms),
        }

    def __repr__(self) -> str:
        return (
            f"ChipReading(passive_auth={self.passive_auth!r}, reason={self.reason!r}, "
            f"<personal data and portrait hidden>)"
        )


class _Link:
    """The session with SM once BAC has opened it; SW errors become ChipError."""

    def __init__(self, session: CardSession) -> None:
        self.session = session
        self.sm: sm.SecureMessaging | None = None

    def plain(self, apdu: bytes) -> tuple[bytes, int]:
        return self.session.transmit(apdu)

    def command(self, header: bytes, data: bytes = b"", le: int | None = None) -> tuple[bytes, int]:
        if self.sm is None:
            apdu = header + (bytes([len(data)]) + data if data else b"")
            return self.plain(apdu + (bytes([le & 0xFF]) if le is not None else b""))
        extended = le is not None and le > 256
        wrapped = self.sm.protect(header, data, le, extended=extended)
        raw, sw = self.session.transmit(wrapped)
        try:
            return self.sm.unprotect(raw + sw.to_bytes(2, "big"))
        except sm.SmError as exc:
            raise ChipError("secure_messaging", CHIP_UNREADABLE, str(exc)) from None

    def select(self, fid: int) -> int:
        return self.command(b"\x00\xa4\x02\x0c", fid.to_bytes(2, "big"))[1]

    def read_file(self, fid: int, name: str, chunk: int) -> bytes:
        sw = self.select(fid)
        if sw != 0x9000:
            raise ChipError("file_missing", CHIP_UNREADABLE, f"{name}: SELECT answered {sw:04X}")
        head, sw = self.command(b"\x00\xb0\x00\x00", le=4)
        if sw != 0x9000 or len(head) < 2:
            raise ChipError("read_failed", CHIP_UNREADABLE, f"{name}: READ BINARY {sw:04X}")
        try:
            _, length, start = read_header(head + bytes(4))
        except TlvError:
            raise ChipError("read_failed", CHIP_UNREADABLE, f"{name}: bad header") from None
        total = start + length
        data = bytearray(head[: min(len(head), total)])
        while len(data) < total:
            offset = len(data)
            if offset > 0x7FFF:
                raise ChipError("read_failed", CHIP_UNREADABLE, f"{name}: file over 32 KB")
            want = min(chunk, total - offset)
            part, sw = self.command(b"\x00\xb0" + offset.to_bytes(2, "big"), le=want)
            if sw not in (0x9000, 0x6282) or not part:
                raise ChipError("read_failed", CHIP_UNREADABLE, f"{name}: READ BINARY {sw:04X}")
            data += part
        return bytes(data[:total])


def _bac(link: _Link, key: MrzKey, random: Callable[[int], bytes]) -> None:
    """ICAO 9303 part 11, 4.3: GET CHALLENGE, MUTUAL AUTHENTICATE, session keys and SSC."""
    k_enc, k_mac = sm.session_keys(sm.key_seed(key.key_string()))
    rnd_ic, sw = link.plain(b"\x00\x84\x00\x00\x08")
    if sw != 0x9000 or len(rnd_ic) != 8:
        raise ChipError("bac_unsupported", CHIP_UNREADABLE, f"GET CHALLENGE answered {sw:04X}")
    rnd_ifd, k_ifd = random(8), random(16)
    e_ifd = sm.encrypt(k_enc, rnd_ifd + rnd_ic + k_ifd)
    answer, sw = link.plain(b"\x00\x82\x00\x00\x28" + e_ifd + sm.retail_mac(k_mac, e_ifd) + b"\x28")
    refused = ChipError("bac_refused", BAC_REFUSED, "the chip refused the MRZ key")
    if sw != 0x9000 or len(answer) != 40:
        raise refused
    e_ic, m_ic = answer[:32], answer[32:]
    if sm.retail_mac(k_mac, e_ic) != m_ic:
        raise refused
    plain = sm.decrypt(k_enc, e_ic)
    if plain[:8] != rnd_ic or plain[8:16] != rnd_ifd:
        raise refused
    seed = bytes(a ^ b for a, b in zip(k_ifd, plain[16:32], strict=True))
    ks_enc, ks_mac = sm.session_keys(seed)
    link.sm = sm.SecureMessaging(ks_enc, ks_mac, rnd_ic[4:] + rnd_ifd[4:])


def _decode(face: lds.FaceImage) -> np.ndarray | None:
    image = cv2.imdecode(np.frombuffer(face.data, np.uint8), cv2.IMREAD_COLOR)
    return image if image is not None and image.size else None


def _fields(mrz_text: str, dg13: lds.Dg13 | None) -> dict[str, Any]:
    try:
        mrz = parse_td1(mrz_text)
    except MrzInvalid as exc:
        raise ChipError("dg1_invalid", CHIP_UNREADABLE, f"DG1 MRZ: {exc.rule}") from None
    d = dg13.fields if dg13 is not None else {}
    out: dict[str, Any] = {
        "id_number": d.get("id_number") or mrz.id_number,
        "name": d.get("name") or f"{mrz.surname} {mrz.given_names}".strip(),
        "date_of_birth": d.get("date_of_birth"),
        "sex": d.get("sex"),
        "address": d.get("address"),
        "issue_date": d.get("issue_date"),
        "old_id": d.get("old_id"),
        "document_number": mrz.document_number,
        "expiry_date": d.get("expiry_date") or mrz.expiry_date().isoformat(),
        "nationality": d.get("nationality") or mrz.nationality,
        "ethnicity": d.get("ethnicity"),
        "religion": d.get("religion"),
        "home_town": d.get("home_town"),
        "features": d.get("features"),
        "father_name": d.get("father_name"),
        "mother_name": d.get("mother_name"),
        "spouse_name": d.get("spouse_name"),
        "mrz_sex": mrz.sex,
    }
    if dg13 is not None:  # entries the kiosk does not interpret, kept as read
        known = set(lds.DG13_FIELDS)
        out["dg13_unparsed"] = {str(k): v for k, v in dg13.raw.items() if k not in known}
    return out


def read_chip(
    reader: CardReader,
    key: MrzKey,
    trust: TrustList,
    *,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    timeout: float = 10.0,
    extended_length: bool = False,
    random: Callable[[int], bytes] = os.urandom,
) -> ChipReading:
    """Read and passively authenticate the chip. Raises NoReader/NoCard (port), CardRemoved
    (the card left mid-read: nothing read is returned), ChipError (BAC refused: `bac_refused`)."""
    timings: dict[str, float] = {}
    started = mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        timings[name] = round((now - mark) * 1000, 2)
        mark = now

    session = reader.connect(timeout)
    try:
        link = _Link(session)
        lap("connect")
        pace = False
        if link.select(lds.CARD_ACCESS) == 0x9000:
            access, sw = link.command(b"\x00\xb0\x00\x00", le=256)
            pace = sw == 0x9000 and lds.pace_offered(access)
        _, sw = link.plain(b"\x00\xa4\x04\x0c\x07" + EMRTD_AID)
        if sw != 0x9000:
            raise ChipError("not_emrtd", NOT_EMRTD, f"SELECT eMRTD applet answered {sw:04X}")
        lap("select")
        _bac(link, key, random)
        lap("bac")
        chunk = EXTENDED_CHUNK if extended_length else SHORT_CHUNK
        files: dict[str, bytes] = {}
        files["COM"] = link.read_file(lds.FIDS["COM"], "COM", chunk)
        lap("read_COM")
        listed = lds.parse_com(files["COM"])
        for name in ("DG1", "DG2", "DG13"):
            if int(name[2:]) in listed or name == "DG1":
                files[name] = link.read_file(lds.FIDS[name], name, chunk)
                lap(f"read_{name}")
        files["SOD"] = link.read_file(lds.FIDS["SOD"], "SOD", chunk)
        lap("read_SOD")
    finally:
        session.close()
    groups = {int(n[2:]): v for n, v in files.items() if n.startswith("DG")}
    verdict = pa.verify(files["SOD"], groups, trust, now=clock())
    lap("passive_auth")
    try:
        dg13 = lds.parse_dg13(files["DG13"]) if "DG13" in files else None
        fields = _fields(lds.parse_dg1(files["DG1"]), dg13)
        face = lds.parse_dg2(files["DG2"]) if "DG2" in files else None
    except lds.LdsError as exc:
        raise ChipError("lds_invalid", CHIP_UNREADABLE, str(exc)) from None
    portrait = _decode(face) if face is not None else None
    lap("parse")
    timings["total"] = round((time.perf_counter() - started) * 1000, 2)
    return ChipReading(
        fields=fields,
        portrait=portrait,
        portrait_kind=face.kind if face is not None else None,
        passive_auth=verdict.passive_auth,
        reason=verdict.reason,
        development=verdict.development,
        data_groups_read=list(files),
        access="BAC",
        pace_offered=pace,
        timings_ms=timings,
    )
