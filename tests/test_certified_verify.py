"""A kiosk verifies a certified copy offline: both signatures chaining to a configured
certification root, the KC2 QR, the pages; development keys are never valid."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edge.copies.sign import DEV_CA_NAME, is_development, make_ca, pem_cert
from edge.copies.verify import TrustStore, verify_pdf, verify_qr
from fleet.certify.copy import MadeCopy, TokenKey, make_copy
from tests.conftest import REPO
from tests.copies_helpers import write_config
from tests.softhsm import SoftPki, issue, shared_pki
from tests.test_certify_copy import CERT, CODE, VERIFY, jpeg_page, keys

DER = serialization.Encoding.DER
VALID_VI = "Bản sao hợp lệ"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SoftPki:
    return shared_pki(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from tests.tsa_server import running_tsa

    ca = tmp_path_factory.mktemp("tsa") / "tsa-ca.pem"
    with running_tsa(ca) as url:
        yield url, ca


def _make(
    pki: SoftPki, officer: TokenKey, agency: TokenKey, tsa: tuple[str, Path] | None = None
) -> MadeCopy:
    extra: dict[str, object] = {}
    if tsa is not None:
        tsa_root = x509.load_pem_x509_certificate(tsa[1].read_bytes())
        extra = {
            "tsa_url": tsa[0],
            "crls": [pki.crl.public_bytes(DER)],
            "trust_roots": [pki.root.public_bytes(DER), tsa_root.public_bytes(DER)],
        }
    return make_copy(
        [jpeg_page(1), jpeg_page(2)],
        code=CODE,
        certification=CERT,  # type: ignore[arg-type]
        officer=officer,
        agency=agency,
        verify_base=VERIFY,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def certified(pki: SoftPki, tsa: tuple[str, Path]) -> MadeCopy:
    return _make(pki, *keys(pki), tsa)


def trust_dir(
    folder: Path,
    pki: SoftPki,
    tsa: tuple[str, Path] | None = None,
    *,
    certification: bool = True,
    agency: bool = True,
) -> TrustStore:
    """A kiosk trust store: the test root as the certification root (or, with
    certification=False, only as an ordinary CA as kiosk CAs are), the agency's certificate,
    the TSA's root in the general store."""
    folder.mkdir(parents=True, exist_ok=True)
    root = pki.root.public_bytes(serialization.Encoding.PEM)
    if certification:
        (folder / "certification" / "agencies").mkdir(parents=True)
        (folder / "certification" / "official-root.pem").write_bytes(root)
        if agency:
            (folder / "certification" / "agencies" / "tayho.pem").write_bytes(
                pki.agency_cert.public_bytes(serialization.Encoding.PEM)
            )
    else:
        (folder / "official-root.pem").write_bytes(root)
    if tsa is not None:
        (folder / "tsa.pem").write_bytes(tsa[1].read_bytes())
    return TrustStore(folder, folder / "revoked.json")


def test_certified_copy_is_valid_and_shows_who_certified_it(
    certified: MadeCopy, pki: SoftPki, tsa: tuple[str, Path], tmp_path: Path
) -> None:
    trust = trust_dir(tmp_path / "trust", pki, tsa)
    verdict = verify_pdf(certified.pdf, trust)
    assert verdict.status == "valid", verdict
    assert verdict.ok and verdict.message_vi == VALID_VI
    facts = verdict.as_dict()
    assert (facts["code"], facts["pages"], facts["kind"]) == (CODE, 2, "certified")
    assert facts["officer"] == "Nguyễn Văn An" and facts["officer_title"] == "Phó Chủ tịch"
    assert facts["agency"] == "Ủy ban nhân dân phường Tây Hồ"
    assert (facts["number"], facts["book"]) == ("17", "01/2026-SCTĐT/BS")
    assert facts["levels"] == ["PAdES-B-T", "PAdES-B-T"]
    qr = verify_qr(certified.qr, trust)
    assert qr.status == "valid" and qr.as_dict()["agency"] == "Ủy ban nhân dân phường Tây Hồ"

    # Revoked by code: both the PDF and the QR say so.
    (tmp_path / "trust" / "revoked.json").write_text(
        json.dumps({"codes": [{"code": CODE, "reason": "cấp nhầm"}]}), encoding="utf-8"
    )
    assert verify_pdf(certified.pdf, trust).status == "revoked"
    assert verify_qr(certified.qr, trust).status == "revoked"


def test_root_not_configured_as_certification_root_is_not_valid(
    certified: MadeCopy, pki: SoftPki, tsa: tuple[str, Path], tmp_path: Path
) -> None:
    # The same root among the kiosk's ordinary CAs (where kiosk copies chain) is not enough.
    trust = trust_dir(tmp_path / "trust", pki, tsa, certification=False)
    assert verify_pdf(certified.pdf, trust).status == "unknown-issuer"
    assert verify_qr(certified.qr, trust).status == "unknown-issuer"


def test_altered_copy_or_forged_qr_is_invalid(
    certified: MadeCopy, pki: SoftPki, tsa: tuple[str, Path], tmp_path: Path
) -> None:
    trust = trust_dir(tmp_path / "trust", pki, tsa)
    flipped = bytearray(certified.pdf)
    flipped[-300] ^= 0x01
    assert verify_pdf(bytes(flipped), trust).status == "invalid"
    forged = certified.qr.replace("/V/" + CODE + "/", "/V/TH-2026-000018-K7/")
    assert verify_qr(forged, trust).status == "invalid"
    # Other pages signed by the same officer and agency under the first copy's QR: the
    # signatures are sound, the QR's content hash is not these pages'.
    from fleet.certify import copy as certify

    pdf = certify.render(
        [jpeg_page(3), jpeg_page(2)], code=CODE, certification=CERT, qr=certified.qr
    )  # type: ignore[arg-type]
    for key, field in zip(keys(pki), (certify.OFFICER_FIELD, certify.AGENCY_FIELD), strict=True):
        session = certify._open(key)
        try:
            pdf = certify.sign_pdf(
                pdf, certify._signer(session, key), field=field, reason="test", location="test"
            )
        finally:
            session.close()
    verdict = verify_pdf(pdf, trust)
    assert (verdict.status, verdict.reason) == (
        "invalid",
        "QR does not match the document's pages",
    )


def test_development_keys_never_verify_as_valid(
    pki: SoftPki, tsa: tuple[str, Path], tmp_path: Path
) -> None:
    # The same token keys, certified by a DEVELOPMENT CA (as a simulation would do); that CA
    # even put among the certification roots, where it must be refused.
    dev_key, dev_ca = make_ca(DEV_CA_NAME)

    def dev_cert(cert: x509.Certificate) -> bytes:
        public = cert.public_key()
        return issue(dev_key, dev_ca, public, cert.subject).public_bytes(DER)  # type: ignore[arg-type]

    officer, agency = keys(pki)
    officer = dataclasses.replace(
        officer, cert_chain=(dev_cert(pki.officer_cert), dev_ca.public_bytes(DER))
    )
    agency_dev = dev_cert(pki.agency_cert)
    agency = dataclasses.replace(agency, cert_chain=(agency_dev, dev_ca.public_bytes(DER)))
    copy = _make(pki, officer, agency)
    assert is_development(x509.load_der_x509_certificate(agency_dev))

    # (The token's key is also the real agency's: its real certificate stays out of this store,
    # or the QR, signed by that key, would rightly verify against it.)
    trust = trust_dir(tmp_path / "trust", pki, tsa, agency=False)
    (tmp_path / "trust" / "certification" / "dev.pem").write_bytes(pem_cert(dev_ca))
    (tmp_path / "trust" / "certification" / "agencies" / "dev.pem").write_bytes(
        x509.load_der_x509_certificate(agency_dev).public_bytes(serialization.Encoding.PEM)
    )
    assert all(not is_development(c) for c in trust.certification_roots())
    for verdict in (verify_pdf(copy.pdf, trust), verify_qr(copy.qr, trust)):
        assert verdict.status == "development", verdict
        assert not verdict.ok and verdict.development
        assert VALID_VI not in verdict.message_vi
        assert "KHÔNG hợp lệ" in verdict.message_vi and "thử nghiệm" in verdict.message_vi


def test_kiosk_copy_verify_shows_officer_agency_number_and_book(
    certified: MadeCopy, pki: SoftPki, tsa: tuple[str, Path], tmp_path: Path
) -> None:
    config = write_config(tmp_path / "kiosk")
    trust_dir(tmp_path / "kiosk" / "state" / "copies" / "trust", pki, tsa)
    pdf = tmp_path / "copy.pdf"
    pdf.write_bytes(certified.pdf)

    def kiosk(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge", "copy", "verify", *args, "--config", str(config)],
            capture_output=True, text=True, timeout=180, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip

    shown = kiosk(str(pdf))
    assert shown.returncode == 0, shown.stderr
    for expected in [
        "valid: Bản sao hợp lệ",
        f"Mã bản sao: {CODE}",
        "Người chứng thực: Phó Chủ tịch Nguyễn Văn An",
        "Cơ quan: Ủy ban nhân dân phường Tây Hồ",
        "Số chứng thực: 17, Quyển số: 01/2026-SCTĐT/BS",
    ]:
        assert expected in shown.stdout, shown.stdout
    by_qr = kiosk("--qr", certified.qr, "--json")
    assert by_qr.returncode == 0 and json.loads(by_qr.stdout)["status"] == "valid"
    altered = bytearray(certified.pdf)
    altered[-300] ^= 0x01
    pdf.write_bytes(bytes(altered))
    refused = kiosk(str(pdf), "--json")
    assert refused.returncode != 0 and json.loads(refused.stdout)["status"] == "invalid"


def test_kiosk_signed_copy_with_a_production_key_is_not_a_certified_copy(tmp_path: Path) -> None:
    """KC1 copies signed by a kiosk key that is not a development one: sound and trusted, but
    no officer or agency certified them (Decree 23/2015 Art. 5, 20): `not-certified`."""
    import datetime as dt

    from cryptography.hazmat.primitives.asymmetric import ec

    from edge.copies.sign import pem_key
    from edge.identity.cccd import parse_cccd
    from tests.copies_helpers import CITIZEN_QR, copy_service, page_image
    from tests.softhsm import make_root

    root_key, root = make_root("Test kiosk CA (production-like)")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "HN-TEST-01")])
    cert = issue(root_key, root, key.public_key(), name)
    (tmp_path / "k.key").write_bytes(pem_key(key))
    (tmp_path / "k.crt").write_bytes(pem_cert(cert))
    trust = tmp_path / "kiosk" / "state" / "copies" / "trust"
    trust.mkdir(parents=True)
    (trust / "kiosk-ca.pem").write_bytes(pem_cert(root))
    extra = f'signing_key = "{tmp_path / "k.key"}"\nsigning_cert = "{tmp_path / "k.crt"}"\n'
    citizen = parse_cccd(CITIZEN_QR, today=dt.date(2026, 11, 23))
    with copy_service(tmp_path / "kiosk", extra=extra) as service:
        issued = service.issue([page_image(1)], citizen)
        assert not is_development(service.signer.certificate)
        for verdict in (service.verify_pdf(issued.pdf), service.verify_qr(issued.qr)):
            assert verdict.status == "not-certified", verdict
            assert not verdict.ok and not verdict.development
            assert VALID_VI not in verdict.message_vi
            assert "không có chữ ký của người thực hiện chứng thực" in verdict.message_vi
