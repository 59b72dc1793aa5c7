"""The emulator's EF.SOD checked by a second, independent implementation: OpenSSL's `cms -verify`
(signature, signed attributes, chain to the CSCA), and its LDSSecurityObject's hashes against
hashlib. So passive authentication is not only our parser agreeing with our builder."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import core

from edge.identity.chip.tlv import one
from edge.sim.icao_card import IcaoCard

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def _openssl_verify(card: IcaoCard, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    (tmp_path / "sod.der").write_bytes(one(card.files[0x011D], 0x77))
    (tmp_path / "csca.der").write_bytes(card.trust_anchor())
    subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-in", "csca.der", "-out", "csca.pem"],
        cwd=tmp_path,
        check=True,
        timeout=30,
    )
    return subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-in", "sod.der", "-CAfile", "csca.pem",
         "-purpose", "any", "-out", "lso.der"],
        cwd=tmp_path,
        capture_output=True,
        timeout=30,
    )  # fmt: skip


def test_openssl_verifies_the_sod_and_its_hashes_are_the_data_groups(tmp_path: Path) -> None:
    card = IcaoCard()
    done = _openssl_verify(card, tmp_path)
    assert done.returncode == 0, done.stderr
    assert b"Verification successful" in done.stderr
    lso = (tmp_path / "lso.der").read_bytes()  # the eContent OpenSSL verified
    parsed = core.Sequence.load(lso)
    assert b"\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01" in parsed[1].dump()  # sha256
    # hashes as OpenSSL hands them back, compared with hashlib over the files the card serves
    for fid in (0x0101, 0x0102, 0x010D):
        assert b"\x04\x20" + hashlib.sha256(card.files[fid]).digest() in lso


def test_openssl_refuses_an_sod_from_another_csca(tmp_path: Path) -> None:
    done = _openssl_verify(IcaoCard(unknown_csca=True), tmp_path)
    assert done.returncode != 0
    assert b"certificate verify error" in done.stderr or b"unable to get" in done.stderr


def test_a_tampered_dg2_no_longer_matches_the_signed_hash(tmp_path: Path) -> None:
    card = IcaoCard(tampered_dg2=True)
    assert _openssl_verify(card, tmp_path).returncode == 0  # the SOD itself is genuine
    lso = (tmp_path / "lso.der").read_bytes()
    assert hashlib.sha256(card.files[0x0101]).digest() in lso
    assert hashlib.sha256(card.files[0x0102]).digest() not in lso


def test_building_a_card_leaves_pyhanko_able_to_name_its_attributes() -> None:
    """In a fresh process (import order matters): an emulated card built before pyHanko is
    imported must not freeze asn1crypto's name caches (found running the chip tests before the
    certification tests: pyHanko could no longer make signing_certificate_v2)."""
    import sys

    code = (
        "from edge.sim.icao_card import IcaoCard\n"
        "IcaoCard()\n"
        "import pyhanko.sign.ades.cades_asn1\n"
        "from asn1crypto import cms\n"
        "print(cms.CMSAttributeType('signing_certificate_v2').dotted)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1.2.840.113549.1.9.16.2.47"
