"""What a scanned QR code is, when a citizen shows the "verify a copy" screen something else:
a queue ticket, a citizen's card, a dossier receipt, a VietQR payment code, a web link.

Each kind is recognised with the parser that reads it elsewhere in the kiosk (the ticket's own
follow text, edge.identity.cccd, edge.services.dossier, edge.vietqr). Only the kind leaves this
module: never the text, and never anything read from a card (a card's QR carries a name, an ID
number, a birth date and an address)."""

from __future__ import annotations

import re
from typing import Literal

from edge.texts import N_

Kind = Literal["copy", "ticket", "card", "dossier", "vietqr", "link", "unknown"]

# What the verify screen says about each kind that is not a copy (English msgids; Vietnamese
# in the catalog, edge.texts).
HEADLINES: dict[str, str] = {
    "ticket": N_("This is a queue ticket, not a copy"),
    "card": N_("This is the QR code of a citizen ID card, not a copy"),
    "dossier": N_("This is the code of a dossier receipt, not a copy"),
    "vietqr": N_("This is a VietQR payment code, not a copy"),
    "link": N_("This is a web link, not a copy"),
    "unknown": N_("This QR code is not the QR code of a copy"),
}
ADVICE: dict[str, str] = {
    "ticket": N_("Please wait for your number to be called."),
    "card": N_("Nothing from the card was read or kept. Please take your card back."),
    "dossier": N_(
        "To see how far your dossier has come, choose “Dossier status” on the start screen."
    ),
    "vietqr": N_("Nothing was paid. Payments are made with your banking app."),
    "link": N_(
        "The kiosk does not open web links. Please place the QR code printed on the copy or its receipt."
    ),
    "unknown": N_("Please place the QR code printed on the copy or on its receipt."),
}

_TICKET_NUMBER = re.compile(r"[A-Z0-9]{1,8}-\d{1,6}")


def is_copy(text: str) -> bool:
    """A copy's QR: a certified copy's (KC2) or a kiosk-signed copy's (KC1), as the verifier
    reads them (edge.copies.verify.verify_qr)."""
    from edge.copies import qrpayload
    from protocol import copyqr

    return copyqr.is_kc2(text) or (qrpayload.VERSION + ":") in text.strip().upper()


def kind_of(text: str, *, ticket_follow_url: str = "") -> Kind:
    """The kind of a scanned QR's text. ticket_follow_url: the kiosk's template for the QR on
    its tickets (edge.config ServicesSection.ticket_follow_url; empty: the text code)."""
    text = text.strip()
    if is_copy(text):
        return "copy"
    if _is_ticket(text, ticket_follow_url):
        return "ticket"
    if _is_card(text):
        return "card"
    if _is_vietqr(text):
        return "vietqr"
    if _is_dossier(text):
        return "dossier"
    if re.match(r"(?i)https?://", text):
        return "link"
    return "unknown"


def _is_ticket(text: str, follow_url: str) -> bool:
    # edge.services.tickets.TicketService._follow: KIOSK-QUEUE|kiosk|day|number, or the URL.
    parts = text.split("|")
    if len(parts) == 4 and parts[0] == "KIOSK-QUEUE" and _TICKET_NUMBER.fullmatch(parts[3]):
        return True
    if follow_url:
        fixed = follow_url.split("{", 1)[0]
        return bool(fixed) and text.startswith(fixed)
    return False


def _is_card(text: str) -> bool:
    from edge.identity.cccd import CccdInvalid, parse_card

    try:
        parse_card(text)
    except CccdInvalid:
        # A card whose QR breaks a rule (an expired card, a date the parser refuses) is still
        # a card: twelve digits, then the card's fields between "|".
        fields = text.split("|")
        return len(fields) >= 6 and re.fullmatch(r"\d{12}", fields[0]) is not None
    return True


def _is_vietqr(text: str) -> bool:
    from edge.errors import BadInput
    from edge.vietqr import NAPAS_GUID, parse

    if not text.startswith("000201"):
        return False
    try:
        parse(text)
    except BadInput:
        return False
    return NAPAS_GUID in text


def _is_dossier(text: str) -> bool:
    from edge.services.dossier import InvalidDossierCode, extract_code

    try:
        extract_code(text)
    except InvalidDossierCode:
        return False
    return True
