"""An emulated Vietnamese chip ID card: the ICAO 9303 eMRTD applet over APDUs.

Builds EF.COM, DG1 (MRZ), DG2 (a synthetic portrait in an ISO/IEC 19794-5 record), DG13
(Vietnamese personal data, the layout in docs/chip.md) and EF.SOD signed by a Document Signer
issued by a *development* CSCA made here (its subject says DEVELOPMENT: never a real anchor).
Answers SELECT (applet, EF.CardAccess in the MF, EFs), GET CHALLENGE, MUTUAL AUTHENTICATE (BAC)
and, under secure messaging, SELECT and READ BINARY with short or extended Le.

Fault switches: a DG2 changed after signing, an SOD signed under a CSCA that is not the trusted
one, a card that vanishes after N APDUs (process() raises CardGone). Used by
edge.adapters.cardreader_sim (in process) and by the PC/SC tests through vpcd.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.identity.chip import sm
from edge.identity.chip.lds import CARD_ACCESS, DG13_FIELDS, FIDS
from edge.identity.chip.pa import (
    DEVELOPMENT_MARK,
    LDS_SECURITY_OBJECT,
    DataGroupHash,
    DataGroupHashValues,
    LdsSecurityObject,
)
from edge.identity.chip.tlv import encode as tlv
from edge.identity.mrz import MrzKey, check_digit, parse_td1

EMRTD_AID = bytes.fromhex("A0000002471001")
ATR = bytes.fromhex("3B8880014241545320414D7D")  # a contactless-style synthesised ATR
PACE_GM_3DES = "0.4.0.127.0.7.2.2.4.1.1"  # id-PACE-DH-GM-3DES-CBC-CBC (advertised only)
SW_OK = 0x9000
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


class CardGone(Exception):
    """The emulated card left the field (pull_after reached)."""


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"kiosk-edge {DEVELOPMENT_MARK}"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


@dataclass(frozen=True)
class DocumentSigner:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


class Csca:
    """A development Country Signing CA (ECDSA P-256) and the Document Signers it issues."""

    def __init__(self, common_name: str = f"CSCA VN {DEVELOPMENT_MARK}") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = _name(common_name)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def issue_signer(self) -> DocumentSigner:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"Document Signer {DEVELOPMENT_MARK}"))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        return DocumentSigner(key, cert)


@functools.lru_cache(maxsize=1)
def development_csca() -> Csca:
    """The one development CSCA of this process (what `[card_reader] adapter = "sim"` trusts)."""
    return Csca()


@functools.lru_cache(maxsize=1)
def development_signer() -> DocumentSigner:
    return development_csca().issue_signer()


@functools.lru_cache(maxsize=1)
def _rogue_signer() -> DocumentSigner:
    return Csca(f"CSCA XX unknown {DEVELOPMENT_MARK}").issue_signer()


@dataclass(frozen=True, repr=False)
class CardHolder:
    """What the card says about its holder (an invented person in the simulation)."""

    id_number: str
    name: str
    date_of_birth: dt.date
    sex: str  # "Nam" | "Nữ"
    address: str
    issue_date: dt.date
    expiry_date: dt.date
    nationality: str = "Việt Nam"
    ethnicity: str = "Kinh"
    religion: str = "Không"
    home_town: str = ""
    features: str = ""
    father_name: str = ""
    mother_name: str = ""
    old_id: str = ""

    def __repr__(self) -> str:
        return "CardHolder(<personal data hidden>)"

    @classmethod
    def from_cccd(cls, card: Any, *, expiry_date: dt.date, **chip_only: str) -> CardHolder:
        """The chip of the card whose QR is `card` (an edge.identity.cccd.CccdCard)."""
        return cls(
            id_number=card.id_number,
            name=card.name,
            date_of_birth=card.date_of_birth,
            sex=card.sex,
            address=card.address,
            issue_date=card.issue_date,
            expiry_date=expiry_date,
            old_id=card.old_id or "",
            **chip_only,
        )

    def mrz(self) -> str:
        """The TD1 MRZ printed on the back (and stored in DG1)."""
        number = self.id_number[-9:]
        l1 = f"IDVNM{number}{check_digit(number)}{self.id_number}".ljust(30, "<")
        dob, exp = self.date_of_birth.strftime("%y%m%d"), self.expiry_date.strftime("%y%m%d")
        sex = "F" if self.sex.lower().startswith("n\u1eef") else "M"
        head = f"{dob}{check_digit(dob)}{sex}{exp}{check_digit(exp)}VNM"
        composite = l1[5:30] + head[0:7] + head[8:15] + "<" * 11
        l2 = head + "<" * 11 + check_digit(composite)
        ascii_name = _latin(self.name).split()
        l3 = (ascii_name[0] + "<<" + "<".join(ascii_name[1:]))[:30].ljust(30, "<")
        return "\n".join((l1, l2, l3))

    def mrz_key(self) -> MrzKey:
        return parse_td1(self.mrz()).key


def _latin(text: str) -> str:
    text = text.replace("Đ", "D").replace("đ", "d")
    plain = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return plain.upper()


def sample_holder() -> CardHolder:
    """An invented holder (no real person), the simulation's default card."""
    return CardHolder(
        id_number="001203004567",
        name="Nguyễn Thị Mẫu",
        date_of_birth=dt.date(2003, 4, 15),
        sex="Nữ",
        address="Số 12 Phố Mẫu, Phường Hàng Trống, Hoàn Kiếm, Hà Nội",
        issue_date=dt.date(2021, 5, 20),
        expiry_date=dt.date(2028, 4, 15),
        home_town="Xã Mẫu Sơn, Huyện Lộc Bình, Lạng Sơn",
        features="Nốt ruồi C:1cm trên trước mày trái",
        father_name="Nguyễn Văn Mẫu",
        mother_name="Trần Thị Thử",
        old_id="012345678",
    )


def synthetic_portrait(width: int = 240, height: int = 320, quality: int = 80) -> bytes:
    """A drawn face (like tests/cards.py's card portrait): no photo of anyone, as a JPEG."""
    img = np.full((height, width, 3), (215, 210, 205), np.uint8)
    cx, cy = width // 2, height // 2 - 10
    cv2.ellipse(img, (cx, cy), (width // 4, height // 4), 0, 0, 360, (160, 190, 226), -1)
    cv2.ellipse(img, (cx, cy), (width // 4, height // 4), 0, 0, 360, (40, 60, 90), 2)
    for dx in (-width // 9, width // 9):
        cv2.ellipse(img, (cx + dx, cy - height // 20), (9, 5), 0, 0, 360, (30, 30, 40), -1)
    cv2.ellipse(img, (cx, cy + height // 9), (width // 10, 12), 0, 20, 160, (40, 40, 120), 3)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def _face_record(jpeg: bytes) -> bytes:
    """ISO/IEC 19794-5:2005 face record: header, one facial record, no feature points; the
    image a JPEG or a JPEG 2000 (JP2) file."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("the portrait is not a decodable JPEG")
    size = image.shape
    facial = (
        (20 + 12 + len(jpeg)).to_bytes(4, "big")
        + b"\x00\x00"  # feature points
        + b"\x00\x00\x00"
        + b"\x00\x00\x00"
        + b"\x00\x00"
        + bytes(6)
        + b"\x01"  # full frontal
        + (b"\x01" if jpeg.startswith(JP2_SIGNATURE) else b"\x00")  # JPEG 2000 or JPEG
        + size[1].to_bytes(2, "big")
        + size[0].to_bytes(2, "big")
        + b"\x01\x00"
        + b"\x00\x00"
        + b"\x00\x00"
        + jpeg
    )
    return b"FAC\x00" + b"010\x00" + (14 + len(facial)).to_bytes(4, "big") + b"\x00\x01" + facial


def build_dg2(jpeg: bytes) -> bytes:
    header = tlv(0xA1, tlv(0x80, b"\x01\x01") + tlv(0x87, b"\x01\x01") + tlv(0x88, b"\x00\x08"))
    template = tlv(0x7F60, header + tlv(0x5F2E, _face_record(jpeg)))
    return tlv(0x75, tlv(0x7F61, tlv(0x02, b"\x01") + template))


def build_dg13(h: CardHolder) -> bytes:
    values: dict[str, list[str]] = {
        "id_number": [h.id_number],
        "name": [h.name],
        "date_of_birth": [h.date_of_birth.strftime("%d/%m/%Y")],
        "sex": [h.sex],
        "nationality": [h.nationality],
        "ethnicity": [h.ethnicity],
        "religion": [h.religion],
        "home_town": [h.home_town],
        "address": [h.address],
        "features": [h.features],
        "issue_date": [h.issue_date.strftime("%d/%m/%Y")],
        "expiry_date": [h.expiry_date.strftime("%d/%m/%Y")],
        "parents": [h.father_name, h.mother_name],
        "spouse_name": [""],
        "old_id": [h.old_id],
    }
    entries = b""
    for number, name in DG13_FIELDS.items():
        strings = b"".join(tlv(0x0C, v.encode("utf-8")) for v in values[name])
        if name == "parents":
            strings = tlv(0x30, strings)
        entries += tlv(0x30, tlv(0x02, bytes([number])) + strings)
    entries += tlv(0x30, tlv(0x02, bytes([16])) + tlv(0x0C, b"unparsed-entry"))
    return tlv(0x6D, tlv(0x02, b"\x01") + tlv(0x30, entries))


def build_sod(groups: dict[int, bytes], signer: DocumentSigner) -> bytes:
    """EF.SOD: CMS SignedData over the LDSSecurityObject (SHA-256), ECDSA by the signer."""
    lso = LdsSecurityObject(
        {
            "version": 0,
            "hash_algorithm": {"algorithm": "sha256"},
            "data_group_hash_values": DataGroupHashValues(
                [
                    DataGroupHash(
                        {
                            "data_group_number": n,
                            "data_group_hash_value": hashlib.sha256(groups[n]).digest(),
                        }
                    )
                    for n in sorted(groups)
                ]
            ),
        }
    ).dump()
    cert = asn1_x509.Certificate.load(signer.certificate.public_bytes(serialization.Encoding.DER))
    attrs = cms.CMSAttributes(
        [
            cms.CMSAttribute(
                {"type": "content_type", "values": [cms.ContentType(LDS_SECURITY_OBJECT)]}
            ),
            cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(lso).digest()]}),
        ]
    )
    signature = signer.key.sign(attrs.dump(), ec.ECDSA(hashes.SHA256()))
    signed = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {
                "content_type": LDS_SECURITY_OBJECT,
                "content": core.ParsableOctetString(lso),
            },
            "certificates": [cert],
            "signer_infos": [
                {
                    "version": "v1",
                    "sid": cms.SignerIdentifier(
                        name="issuer_and_serial_number",
                        value={"issuer": cert.issuer, "serial_number": cert.serial_number},
                    ),
                    "digest_algorithm": {"algorithm": "sha256"},
                    "signed_attrs": attrs,
                    "signature_algorithm": {"algorithm": "sha256_ecdsa"},
                    "signature": signature,
                }
            ],
        }
    )
    info = cms.ContentInfo({"content_type": "signed_data", "content": signed})
    sod = tlv(0x77, info.dump())
    _forget_asn1_names()
    return sod


def _forget_asn1_names() -> None:
    """Drop asn1crypto's name -> OID caches that building by name filled in.

    asn1crypto builds each OID class's reverse map once, on first use by name; pyHanko adds
    names to the maps later (cades' signing_certificate_v2 ...) without refreshing that cache.
    A card built in the process before pyHanko was imported (the PC simulation's chip step,
    then a copy verified) left pyHanko unable to name its own attributes. The caches are pure
    derivations of the maps: rebuilt on next use, with every name registered by then (asn1crypto
    rebuilds a class's cache when the class is not in core._SETUP_CLASSES: both are private, so
    tests/test_chip_sod.py checks this in a fresh process)."""
    for oid_class in (
        cms.CMSAttributeType,
        cms.ContentType,
        algos.DigestAlgorithmId,
        algos.SignedDigestAlgorithmId,
    ):
        oid_class._reverse_map = None
        core._SETUP_CLASSES.pop(oid_class, None)


def _card_access() -> bytes:
    """EF.CardAccess offering PACE (generic mapping, 3DES): as cards with PACE answer."""
    oid = core.ObjectIdentifier(PACE_GM_3DES).dump()
    return tlv(0x31, tlv(0x30, oid + tlv(0x02, b"\x02")))


class IcaoCard:
    """The card: power_on()/power_off(), process(APDU) -> response data + SW."""

    atr = ATR

    def __init__(
        self,
        holder: CardHolder | None = None,
        portrait_jpeg: bytes | None = None,
        signer: DocumentSigner | None = None,
        *,
        tampered_dg2: bool = False,
        unknown_csca: bool = False,
        pull_after: int | None = None,
        offer_pace: bool = True,
        csca: Csca | None = None,
    ) -> None:
        self.holder = holder or sample_holder()
        self.csca = csca or development_csca()
        if unknown_csca:
            signer = _rogue_signer()
        elif signer is None:
            signer = development_signer() if csca is None else self.csca.issue_signer()
        dg1 = tlv(0x61, tlv(0x5F1F, self.holder.mrz().replace("\n", "").encode("ascii")))
        dg2 = build_dg2(portrait_jpeg or synthetic_portrait())
        dg13 = build_dg13(self.holder)
        groups = {1: dg1, 2: dg2, 13: dg13}
        sod = build_sod(groups, signer)
        if tampered_dg2:  # changed after signing: one byte inside the image
            i = len(dg2) - 40
            dg2 = dg2[:i] + bytes([dg2[i] ^ 0x01]) + dg2[i + 1 :]
        com = tlv(0x60, tlv(0x5F01, b"0107") + tlv(0x5F36, b"040000") + tlv(0x5C, b"\x61\x75\x6d"))
        self.files = {
            FIDS["COM"]: com,
            FIDS["DG1"]: dg1,
            FIDS["DG2"]: dg2,
            FIDS["DG13"]: dg13,
            FIDS["SOD"]: sod,
        }
        self.card_access = _card_access() if offer_pace else None
        self.pull_after = pull_after
        self.apdus = 0
        self._k_enc, self._k_mac = sm.session_keys(sm.key_seed(self.holder.mrz_key().key_string()))
        self.power_on()

    @classmethod
    def sample(cls, **faults: object) -> IcaoCard:
        return cls(**faults)  # type: ignore[arg-type]

    # --- trust -----------------------------------------------------------------------------
    def trust_anchor(self) -> bytes:
        """The CSCA certificate (DER) a kiosk must trust to validate this card (never the
        rogue one of unknown_csca)."""
        return self.csca.der()

    def write_trust_list(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "csca-development.der"
        path.write_bytes(self.trust_anchor())
        return path

    # --- the field ---------------------------------------------------------------------------
    def power_on(self) -> None:
        self._applet = False
        self._selected: int | None = None
        self._rnd_ic: bytes | None = None
        self._sm: sm.SecureMessaging | None = None

    def power_off(self) -> None:
        self.power_on()

    def process(self, apdu: bytes) -> bytes:
        self.apdus += 1
        if self.pull_after is not None and self.apdus > self.pull_after:
            self.power_off()
            raise CardGone("the card left the reader")
        try:
            data, sw = self._dispatch(apdu)
        except sm.SmError:
            self._sm = None  # an SM error ends the session (ICAO 9303 part 11, 9.8.4)
            return b"\x69\x88"
        if self._sm is not None and apdu[0] & 0x0C:
            return self._sm.seal_response(data, sw)
        return data + sw.to_bytes(2, "big")

    def _dispatch(self, apdu: bytes) -> tuple[bytes, int]:
        if apdu[0] & 0x0C:
            if self._sm is None:
                return b"", 0x6988
            header, data, le = self._sm.open_command(apdu)
        else:
            if self._sm is not None and apdu[1] in (0xA4, 0xB0):
                self._sm = None  # a plain command ends secure messaging
                return b"", 0x6982
            header, data, le, _ = sm.parse_apdu(apdu)
        ins, p1, p2 = header[1], header[2], header[3]
        if ins == 0xA4:
            return self._select(p1, data)
        if ins == 0xB0:
            return self._read(p1, p2, le or 256)
        if ins == 0x84:
            if not self._applet or le != 8:
                return b"", 0x6985 if not self._applet else 0x6700
            self._rnd_ic = os.urandom(8)
            return self._rnd_ic, SW_OK
        if ins == 0x82:
            return self._mutual_authenticate(data)
        return b"", 0x6D00

    def _select(self, p1: int, data: bytes) -> tuple[bytes, int]:
        if p1 == 0x04:
            if data == EMRTD_AID:
                self._applet, self._selected, self._sm = True, None, None
                return b"", SW_OK
            return b"", 0x6A82
        if p1 in (0x00, 0x02) and len(data) == 2:
            fid = int.from_bytes(data, "big")
            if fid == CARD_ACCESS and self.card_access is not None:
                self._selected = fid
                return b"", SW_OK
            if fid in self.files and self._applet:
                if self._sm is None:
                    return b"", 0x6982
                self._selected = fid
                return b"", SW_OK
        return b"", 0x6A82

    def _read(self, p1: int, p2: int, le: int) -> tuple[bytes, int]:
        if self._selected is None or p1 & 0x80:
            return b"", 0x6986
        content = (
            self.card_access if self._selected == CARD_ACCESS else self.files[self._selected]
        ) or b""
        offset = (p1 << 8) | p2
        if offset > len(content):
            return b"", 0x6B00
        return content[offset : offset + le], SW_OK

    def _mutual_authenticate(self, data: bytes) -> tuple[bytes, int]:
        rnd_ic, self._rnd_ic = self._rnd_ic, None
        if rnd_ic is None or len(data) != 40:
            return b"", 0x6985
        e_ifd, m_ifd = data[:32], data[32:]
        if sm.retail_mac(self._k_mac, e_ifd) != m_ifd:
            return b"", 0x6300
        s = sm.decrypt(self._k_enc, e_ifd)
        if s[8:16] != rnd_ic:
            return b"", 0x6300
        rnd_ifd, k_ifd = s[:8], s[16:32]
        k_ic = os.urandom(16)
        e_ic = sm.encrypt(self._k_enc, rnd_ic + rnd_ifd + k_ic)
        seed = bytes(a ^ b for a, b in zip(k_ifd, k_ic, strict=True))
        self._sm = sm.SecureMessaging(*sm.session_keys(seed), rnd_ic[4:] + rnd_ifd[4:])
        return e_ic + sm.retail_mac(self._k_mac, e_ic), SW_OK
