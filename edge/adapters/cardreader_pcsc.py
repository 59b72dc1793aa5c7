"""The card-reader port through PC/SC: pyscard -> libpcsclite -> pcscd -> the reader's driver
(libccid for a USB CCID reader such as an ACS ACR1252U; vsmartcard's vpcd in the tests).

Which pcscd: libpcsclite's own rule (its compiled-in socket, or PCSCLITE_CSOCK_NAME when set);
this adapter never names a socket. Which reader: the first whose name contains `reader`
(case-insensitive); with an empty `reader`, the first whose name says PICC or contactless (a
dual reader such as the ACR1252U lists its contactless slot as "... PICC ..." beside its SAM
slot), else the first reader. APDUs, short or extended length, pass through unchanged; nothing
here logs them (they carry the citizen's data).
"""

from __future__ import annotations

import contextlib
from typing import Any

from edge.ports.cardreader import CardRemoved, NoCard, NoReader

_CONTACTLESS = ("picc", "contactless")


def _pyscard() -> Any:
    try:
        from smartcard import CardRequest, Exceptions, System
        from smartcard.pcsc import PCSCExceptions
    except ImportError as err:  # the chip extra is not installed
        raise NoReader(
            "pyscard is not installed: pip install 'kiosk-edge[chip]' (docs/chip.md)"
        ) from err
    return CardRequest, _Errors(Exceptions, PCSCExceptions), System


class _Errors:
    """pyscard's two exception families: smartcard.Exceptions (SmartcardException, ...) and
    smartcard.pcsc.PCSCExceptions (EstablishContextException when pcscd does not run, ...)."""

    def __init__(self, exceptions: Any, pcsc: Any) -> None:
        self.NoCardException = exceptions.NoCardException
        self.CardRequestTimeoutException = exceptions.CardRequestTimeoutException
        self.SmartcardException = (exceptions.SmartcardException, pcsc.BaseSCardException)


def pick_reader(names: list[str], wanted: str) -> str | None:
    """The reader `wanted` names (a substring), or the contactless one, or the first."""
    if wanted:
        return next((n for n in names if wanted.lower() in n.lower()), None)
    for name in names:
        if any(word in name.lower() for word in _CONTACTLESS):
            return name
    return names[0] if names else None


class PcscCardSession:
    """One card, connected through pcscd."""

    def __init__(self, service: Any, errors: Any) -> None:
        # pyscard's card service disconnects the card when it is garbage-collected: keep it.
        self._service = service
        self._connection = service.connection
        self._errors = errors
        self._atr = bytes(self._connection.getATR())

    @property
    def atr(self) -> bytes:
        return self._atr

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        try:
            data, sw1, sw2 = self._connection.transmit(list(apdu))
        except self._errors.SmartcardException as err:
            # NoCardException, CardConnectionException ("Card was removed", "Transaction
            # failed", a reader gone): the card is no longer answering, whatever the cause.
            raise CardRemoved(f"the card stopped answering: {_reason(err)}") from None
        return bytes(data), (sw1 << 8) | sw2

    def close(self) -> None:
        with contextlib.suppress(*self._errors.SmartcardException):
            self._connection.disconnect()  # the card may be gone already
        with contextlib.suppress(*self._errors.SmartcardException, AttributeError):
            self._connection.release()


class PcscCardReader:
    """CardReader over pcscd. `reader`: a substring of the reader's name ("" = contactless)."""

    def __init__(self, reader: str | None = "") -> None:
        self.reader = reader or ""

    def reader_name(self) -> str:
        """The reader this adapter would use now; NoReader when there is none."""
        _, errors, system = _pyscard()
        try:
            names = [str(r) for r in system.readers()]
        except errors.SmartcardException as err:
            # EstablishContext fails when pcscd does not run; ListReaders when no reader.
            raise NoReader(f"no PC/SC reader (is pcscd running?): {_reason(err)}") from None
        name = pick_reader(names, self.reader)
        if name is None:
            wanted = f" named like {self.reader!r}" if self.reader else ""
            raise NoReader(f"no card reader{wanted} among {len(names)} PC/SC readers")
        return name

    def connect(self, timeout: float) -> PcscCardSession:
        card_request, errors, _ = _pyscard()
        name = self.reader_name()
        try:
            request = card_request.CardRequest(readers=[name], timeout=max(timeout, 0.0))
        except errors.SmartcardException as err:
            raise NoReader(f"pcscd does not answer: {_reason(err)}") from None
        try:
            service = request.waitforcard()
        except errors.CardRequestTimeoutException:
            raise NoCard(f"no card on the reader within {timeout:g} s") from None
        except errors.SmartcardException as err:
            raise NoReader(f"the card reader went away: {_reason(err)}") from None
        finally:
            _release(request)
        connection = service.connection
        try:
            connection.connect()
            return PcscCardSession(service, errors)
        except errors.NoCardException:
            raise NoCard("the card left the reader before it answered") from None
        except errors.SmartcardException as err:
            raise CardRemoved(f"the card did not answer the reader: {_reason(err)}") from None


def _release(request: Any) -> None:
    release = getattr(getattr(request, "pcsccardrequest", None), "release", None)
    if release is not None:
        with contextlib.suppress(Exception):  # the context is gone with pcscd: nothing to free
            release()


def _reason(err: Exception) -> str:
    """pyscard's message, which carries the PC/SC code; never an APDU (not in its messages)."""
    return str(err).strip() or type(err).__name__
