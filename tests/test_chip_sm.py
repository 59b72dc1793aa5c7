"""BAC and secure messaging against the worked example of ICAO 9303 part 11, appendix D
(D.2 key derivation, D.3 authentication, D.4 secure messaging); values as published there and
as other open implementations test them (docs/chip.md, "Checked against")."""

from __future__ import annotations

import pytest

from edge.identity.chip import sm
from edge.identity.mrz import MrzKey

H = bytes.fromhex


def test_key_seed_and_keys_from_the_appendix_mrz() -> None:
    key = MrzKey("L898902C", "690806", "940623")
    assert key.key_string() == b"L898902C<369080619406236"
    seed = sm.key_seed(key.key_string())
    assert seed == H("239AB9CB282DAF66231DC5A4DF6BFBAE")
    assert sm.kdf(seed, sm.KENC) == H("AB94FDECF2674FDFB9B391F85D7F76F2")
    assert sm.kdf(seed, sm.KMAC) == H("7962D9ECE03D1ACD4C76089DCE131543")


def test_mutual_authenticate_cryptogram_and_session_keys() -> None:
    k_enc, k_mac = H("AB94FDECF2674FDFB9B391F85D7F76F2"), H("7962D9ECE03D1ACD4C76089DCE131543")
    s = H("781723860C06C2264608F919887022120B795240CB7049B01C19B33E32804F0B")
    e_ifd = sm.encrypt(k_enc, s)
    assert e_ifd == H("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2")
    assert sm.retail_mac(k_mac, e_ifd) == H("5F1448EEA8AD90A7")
    # The chip's answer (D.3 step 3), checked and decrypted as the reader does.
    resp = H("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D7449")
    assert sm.retail_mac(k_mac, resp[:32]) == resp[32:]
    plain = sm.decrypt(k_enc, resp[:32])
    assert plain[:16] == H("4608F91988702212781723860C06C226")
    k_ic = plain[16:]
    assert k_ic == H("0B4F80323EB3191CB04970CB4052790B")
    seed = bytes(a ^ b for a, b in zip(H("0B795240CB7049B01C19B33E32804F0B"), k_ic, strict=True))
    assert seed == H("0036D272F5C350ACAC50C3F572D23600")
    assert sm.session_keys(seed) == (
        H("979EC13B1CBFE9DCD01AB0FED307EAE5"),
        H("F1CB1F1FB5ADF208806B89DC579DC1F8"),
    )


def _appendix_session() -> sm.SecureMessaging:
    return sm.SecureMessaging(
        H("979EC13B1CBFE9DCD01AB0FED307EAE5"),
        H("F1CB1F1FB5ADF208806B89DC579DC1F8"),
        H("887022120C06C226"),
    )


def test_sm_select_ef_com_and_its_response() -> None:
    session = _appendix_session()
    apdu = session.protect(H("00A4020C"), H("011E"))
    assert apdu == H("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800")
    assert session.ssc == 0x887022120C06C227
    data, sw = session.unprotect(H("990290008E08FA855A5D4C50A8ED9000"))
    assert (data, sw) == (b"", 0x9000)
    assert session.ssc == 0x887022120C06C228


def test_sm_read_binary_of_four_bytes_and_its_response() -> None:
    session = _appendix_session()
    session.ssc = 0x887022120C06C228
    assert session.protect(H("00B00000"), le=4) == H("0CB000000D9701048E08ED6705417E96BA5500")
    data, sw = session.unprotect(H("8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000"))
    assert (data, sw) == (H("60145F01"), 0x9000)


def test_a_response_with_a_wrong_mac_is_refused() -> None:
    session = _appendix_session()
    session.protect(H("00A4020C"), H("011E"))
    with pytest.raises(sm.SmError):
        session.unprotect(H("990290008E08FA855A5D4C50A8EE9000"))


def test_the_card_side_opens_what_the_terminal_protects_short_and_extended() -> None:
    terminal, card = _appendix_session(), _appendix_session()
    for le, extended in ((0xDF, False), (0x0800, True)):
        header, data, got = card.open_command(
            terminal.protect(H("00B00010"), le=le, extended=extended)
        )
        assert (header, data, got) == (H("00B00010"), b"", le)
        data, sw = terminal.unprotect(card.seal_response(b"\x01\x02\x03", 0x9000))
        assert (data, sw) == (b"\x01\x02\x03", 0x9000)


def test_padding_method_2() -> None:
    assert sm.pad(b"") == H("8000000000000000")
    assert sm.pad(H("01020304050607")) == H("0102030405060780")
    assert sm.unpad(sm.pad(H("0102030405060708"))) == H("0102030405060708")
    with pytest.raises(sm.SmError):
        sm.unpad(H("0102030405060700"))
