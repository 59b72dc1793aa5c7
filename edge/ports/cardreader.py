"""The contactless card-reader port: APDUs to the chip of an ID card laid on the reader.

Adapters: edge.adapters.cardreader_pcsc (pyscard over pcscd: a real reader, or vsmartcard's
virtual reader in the tests) and edge.adapters.cardreader_sim (an emulated Vietnamese chip card,
edge.sim.icao_card, in process). The ICAO 9303 logic above it (edge.identity.chip) sees only
this port.
"""

from __future__ import annotations

from typing import Protocol

from edge.errors import HardwareUnavailable


class NoReader(HardwareUnavailable):
    """No card reader is connected (or the one configured is not there)."""

    code = "no_card_reader"


class NoCard(HardwareUnavailable):
    """The reader is there but no card was laid on it in time."""

    code = "no_card"


class CardRemoved(HardwareUnavailable):
    """The card left the reader (or stopped answering) during a read; nothing read is kept."""

    code = "card_removed"


class CardSession(Protocol):
    """One card on the reader, powered and answering."""

    @property
    def atr(self) -> bytes:
        """The answer to reset (for contactless cards, the reader's synthesised ATR)."""
        ...

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one command APDU; (response data, status word such as 0x9000).
        CardRemoved when the card is gone."""
        ...

    def close(self) -> None: ...


class CardReader(Protocol):
    def connect(self, timeout: float) -> CardSession:
        """Wait up to `timeout` seconds for a card; NoReader, NoCard."""
        ...
