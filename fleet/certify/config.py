"""The certifier's settings: the agency, its book, office hours, the SLA and the agency seal."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from fleet.certify.statement import book_ref


class SealKey(BaseModel):
    """The agency seal: a key on a PKCS#11 token (fleet.certify.copy.TokenKey once read)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    module: str = Field(
        "/usr/lib/softhsm/libsofthsm2.so", description="Path of the PKCS#11 library."
    )
    token_label: str = Field("", description="The agency's token.")
    key_label: str = Field("", description="The seal key on that token.")
    pin_file: Path | None = Field(None, description="A file holding the token's user PIN.")

    def pin(self) -> str:
        if self.pin_file is None:
            return ""
        return self.pin_file.read_text(encoding="utf-8").strip()


class MailConfig(BaseModel):
    """[certify.mail]: e-mail delivery of approved copies (docs/ecopy.md, "Delivery"); off
    while host is empty."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("", description="SMTP server; empty: no e-mail is sent.")
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field("", description="The From address, e.g. 'chungthuc@badinh.gov.vn'.")
    starttls: bool = Field(False, description="STARTTLS before authenticating and sending.")
    username: str = Field("", description="SMTP login (none when empty).")
    password_file: Path | None = Field(None, description="A file holding the SMTP password.")
    timeout_s: float = Field(30.0, gt=0, description="Connect and each SMTP command.")

    def password(self) -> str:
        if self.password_file is None:
            return ""
        return self.password_file.read_text(encoding="utf-8").strip()


class CertifyConfig(BaseModel):
    """[certify]: off while agency_id is empty."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agency_id: str = Field("", description="The agency whose officers certify (book key).")
    agency_name: str = Field("", description="As printed, e.g. 'UBND phường Ba Đình'.")
    place: str = Field("", description="'Tại …' on the statement, e.g. 'Hà Nội'.")
    verify_base: str = Field(
        "https://example.invalid",
        description="Central's public verification site, https://<host>[:port]; a copy's QR is "
        "<host>/V/<code>/... (protocol/copyqr.py).",
    )
    book_number: int = Field(1, ge=1, le=99, description="'Quyển số 01/<year>-SCTĐT/BS'.")
    timezone: str = Field("Asia/Ho_Chi_Minh", description="Office hours, dates and the book year.")
    office_opens: dt.time = Field(dt.time(7, 30), description="Start of office hours (local).")
    office_closes: dt.time = Field(dt.time(17, 0), description="Art. 7 deadlines end at this.")
    holidays: list[dt.date] = Field(default_factory=list, description="Days off besides weekends.")
    sla_s: float = Field(
        180.0, gt=0, description="Target from receipt to decision (3 minutes, issue 16)."
    )
    sla_soon_s: float = Field(
        60.0, ge=0, description="A waiting request turns 'soon' this long before its SLA ends."
    )
    minutes_per_request: float = Field(
        1.5, gt=0, description="An officer's time per request: the expected wait told the kiosk."
    )
    fee_first_pages_vnd: int = Field(
        2000, ge=0, description="Fee per page for pages 1-2 (Circular 226/2016/TT-BTC)."
    )
    fee_next_pages_vnd: int = Field(1000, ge=0, description="Fee per page from page 3 on.")
    fee_max_vnd: int = Field(200000, ge=0, description="Fee ceiling per copy.")
    seal: SealKey = SealKey()
    mail: MailConfig = MailConfig()
    tsa_url: str | None = Field(None, description="RFC 3161 timestamp authority (PAdES B-T).")
    crl_files: list[Path] = Field(
        default_factory=list,
        description="CRLs (DER or PEM) of the official-use CA, embedded in the agency seal's "
        "signature for PAdES B-LT; needs trust_root_files. Fetch them fresh (a cron job).",
    )
    trust_root_files: list[Path] = Field(
        default_factory=list,
        description="Root certificates (PEM) the B-LT validation chains to: the official-use "
        "CA's and the TSA's.",
    )
    fleet_ca_file: Path | None = Field(
        None,
        description="The CA that issued the kiosks' certificates (checks the capture packages' "
        "signatures); default: [provisioning] ca_dir's ca.crt, else [mqtt] ca_file.",
    )
    font_file: Path | None = Field(
        None, description="A TTF with Vietnamese glyphs for the PDF register (default: DejaVu)."
    )

    def revocation_data(self) -> tuple[list[bytes], list[bytes]]:
        """(CRLs, roots) as DER for make_copy's B-LT; both empty unless both are configured."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        if not self.crl_files or not self.trust_root_files:
            return [], []
        crls = []
        for path in self.crl_files:
            data = path.read_bytes()
            crl = (
                x509.load_pem_x509_crl(data)
                if data.lstrip().startswith(b"-----")
                else x509.load_der_x509_crl(data)
            )
            crls.append(crl.public_bytes(Encoding.DER))
        roots = [
            cert.public_bytes(Encoding.DER)
            for path in self.trust_root_files
            for cert in x509.load_pem_x509_certificates(path.read_bytes())
        ]
        return crls, roots

    @property
    def enabled(self) -> bool:
        return bool(self.agency_id)

    def book_label(self, year: int) -> str:
        """The book as the table keeps it, "01/2026-SCTĐT/BS" (fleet.certify.statement)."""
        return book_ref(self.book_number, year)

    def fee(self, pages: int) -> int:
        """Circular 226/2016/TT-BTC: 2,000 VND a page for the first two, 1,000 from the third,
        at most 200,000 a copy."""
        first = min(pages, 2) * self.fee_first_pages_vnd
        rest = max(pages - 2, 0) * self.fee_next_pages_vnd
        return min(first + rest, self.fee_max_vnd)
