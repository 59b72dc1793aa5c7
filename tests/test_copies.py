"""Copy codes, fees, VietQR payloads and the QR payload format, on their own."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from edge.config import CopiesSection
from edge.copies import qrpayload
from edge.copies.code import ALPHABET, check_char, make_code, parse_code
from edge.errors import BadInput
from edge.fees import format_vnd, quote
from edge.vietqr import check_crc, crc16_ccitt_false, parse, payment_payload

# --- copy codes ------------------------------------------------------------------------


def test_code_shape_and_round_trip() -> None:
    code = make_code("HN-TAYHO-01", dt.date(2026, 11, 23), 42)
    assert code.text.startswith("HN-TAYHO-01-261123-000042-")
    assert parse_code(code.text) == code
    assert parse_code(" " + code.text.lower() + " ") == code  # typed in lower case, spaces


@given(st.text(alphabet=ALPHABET, min_size=4, max_size=30), st.data())
def test_check_char_catches_every_single_substitution(body: str, data: st.DataObject) -> None:
    full = body + check_char(body)
    i = data.draw(st.integers(0, len(full) - 1))
    other = data.draw(st.sampled_from([c for c in ALPHABET if c != full[i]]))
    typo = full[:i] + other + full[i + 1 :]
    assert check_char(typo[:-1]) != typo[-1]


def test_check_char_catches_nearly_every_neighbour_swap() -> None:
    """ISO 7064's hybrid MOD 37,36 catches most swaps of two neighbouring characters, not all
    (CD1J56 and CD1J65 share the check P): measured over the sequence digits of codes."""
    assert check_char("CD1J56") == check_char("CD1J65")  # the known blind spot
    missed = swaps = 0
    for seq in range(0, 200_000, 7):
        body = f"HN-TAYHO-01-261123-{seq:06d}"
        for i in range(len(body) - 6, len(body) - 1):
            swapped = body[:i] + body[i + 1] + body[i] + body[i + 2 :]
            if swapped != body:
                swaps += 1
                missed += check_char(swapped) == check_char(body)
    assert swaps > 100_000
    assert missed / swaps < 0.005  # measured 0.30 %


def test_bad_codes_are_refused_in_vietnamese() -> None:
    code = make_code("HN-TAYHO-01", dt.date(2026, 11, 23), 7).text
    wrong = code[:-1] + ("A" if code[-1] != "A" else "B")
    with pytest.raises(BadInput, match="ký tự kiểm tra sai"):
        parse_code(wrong)
    with pytest.raises(BadInput, match="Mã bản sao không đúng"):
        parse_code("HN-261123-7")


# --- fees --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pages", "vnd"),
    [(1, 2000), (2, 4000), (3, 5000), (10, 12000), (198, 200000), (199, 200000), (200, 200000)],
)
def test_circular_226_schedule(pages: int, vnd: int) -> None:
    fee = quote(pages, CopiesSection(), "HCM-Q1-01", on=dt.date(2026, 12, 1))
    assert (fee.fee_vnd, fee.payable_vnd, fee.rule_id) == (vnd, vnd, "VN-TT226-2016-copy")


def test_hanoi_is_free_online_only_and_amounts_are_formatted() -> None:
    on = dt.date(2026, 12, 1)
    hanoi = quote(3, CopiesSection(fee_channel="online"), "HN-TAYHO-01", on=on)
    assert (hanoi.fee_vnd, hanoi.payable_vnd, hanoi.label_vi) == (5000, 0, "Miễn phí")
    elsewhere = quote(3, CopiesSection(fee_channel="online"), "HCM-Q1-01", on=on)
    assert (elsewhere.payable_vnd, elsewhere.label_vi) == (5000, "5.000 đ")
    assert quote(3, CopiesSection(), "HN-TAYHO-01", on=on).payable_vnd == 5000  # at-kiosk
    assert format_vnd(200000) == "200.000 đ"
    with pytest.raises(BadInput):
        quote(0, CopiesSection(), "HN-TAYHO-01")


# --- VietQR ------------------------------------------------------------------------------

# Published examples and their CRCs: the EMVCo MPM specification's sample payload, and the
# VietQR example of the subiz/vietqr library README (120,000 VND to VietinBank 0011001932418).
EMVCO_SAMPLE = (
    "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN"
    "5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412"
    "340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A"
)
VIETQR_SAMPLE = (
    "00020101021238570010A00000072701270006970415011300110019324180208QRIBFTTA53037045406120000"
    "5802VN62170813ung ho lu lut6304C15C"
)


def test_crc_matches_published_examples() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1  # the CRC catalogue's check value
    assert check_crc(EMVCO_SAMPLE)
    assert check_crc(VIETQR_SAMPLE)
    assert not check_crc(VIETQR_SAMPLE.replace("120000", "920000"))


def test_payment_payload_matches_the_published_vietqr_example() -> None:
    built = payment_payload(
        bank_bin="970415", account="0011001932418", amount_vnd=120000, purpose="ủng hộ lũ lụt"
    )
    assert built == VIETQR_SAMPLE
    fields = parse(built)
    assert fields["38"].startswith("0010A000000727")
    assert (fields["53"], fields["54"], fields["58"]) == ("704", "120000", "VN")


def test_static_payload_without_amount_and_card_service() -> None:
    built = payment_payload(bank_bin="970436", account="9704366614951", to_card=True)
    fields = parse(built)
    assert fields["01"] == "11" and "54" not in fields and "QRIBFTTC" in fields["38"]
    with pytest.raises(BadInput):
        payment_payload(bank_bin="97", account="1")
    with pytest.raises(BadInput, match="CRC"):
        parse(built[:-1] + ("0" if built[-1] != "0" else "1"))


# --- QR payload --------------------------------------------------------------------------


def _signed(code_seq: int = 5) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    code = make_code("HN-TAYHO-01", dt.date(2026, 11, 23), code_seq)
    when = dt.datetime(2026, 11, 23, 3, 4, 5, tzinfo=dt.UTC)
    text = qrpayload.build(
        code,
        when,
        qrpayload.content_hash([b"page1", b"page2"]),
        lambda d: key.sign(d, ec.ECDSA(hashes.SHA256())),
    )
    return text, key


def test_qr_payload_is_compact_alphanumeric_and_verifies() -> None:
    import segno

    text, key = _signed()
    assert set(text) <= set(ALPHABET + "-:")
    assert segno.make(text, error="m").version <= 8  # 49 modules: fits 58 mm paper at 6 dots
    payload = qrpayload.parse("HTTPS://VERIFY.EXAMPLE/" + text)
    assert payload.code.text.startswith("HN-TAYHO-01-261123-000005")
    assert payload.issued_at == dt.datetime(2026, 11, 23, 3, 4, 5, tzinfo=dt.UTC)
    assert payload.verify(key.public_key())
    assert not payload.verify(ec.generate_private_key(ec.SECP256R1()).public_key())


def test_qr_with_another_code_fails_its_signature() -> None:
    text, key = _signed(5)
    other = make_code("HN-TAYHO-01", dt.date(2026, 11, 23), 6).text
    forged = text.replace(qrpayload.parse(text).code.text, other)
    payload = qrpayload.parse(forged)  # well formed, check character right
    assert not payload.verify(key.public_key())
    with pytest.raises(qrpayload.QrInvalid):
        qrpayload.parse(text.replace("HN-TAYHO-01:", "HN-TAYHO-02:"))
    with pytest.raises(qrpayload.QrInvalid):
        qrpayload.parse("hello")


def test_signer_with_an_unreadable_chain_file_is_unavailable_not_a_crash_later(tmp_path):
    # pyHanko's SimpleSigner.load() returns None (and only logs) when the chain file is
    # unreadable; the signer used to keep that None and fail deep inside the first PDF signing.
    from edge.copies.sign import (
        KioskSigner,
        SigningUnavailable,
        issue_signing_cert,
        make_ca,
        pem_cert,
        pem_key,
    )

    ca_key, ca_cert = make_ca("Test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "sign.key").write_bytes(pem_key(key))
    cert = issue_signing_cert("TEST-01", key.public_key(), ca_key, ca_cert)
    (tmp_path / "sign.crt").write_bytes(pem_cert(cert))
    signer = KioskSigner(
        tmp_path / "sign.key", tmp_path / "sign.crt", chain_path=tmp_path / "missing-chain.pem"
    )

    with pytest.raises(SigningUnavailable, match="chain"):
        signer.sign_pdf(b"%PDF-1.7", code="X", location="here")
    assert KioskSigner(tmp_path / "sign.key", tmp_path / "sign.crt").certificate == cert
