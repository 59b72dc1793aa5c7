"""The simulated card reader: an emulated chip card (edge.sim.icao_card) on it, in process.

`[card_reader] adapter = "sim"`: the trust list is the emulator's development CSCA and the
readings say development=True. A test lays its own card (fault switches) with SimCardReader(card).
"""

from __future__ import annotations

from edge.ports.cardreader import CardRemoved, NoCard
from edge.sim.icao_card import CardGone, IcaoCard


class SimSession:
    def __init__(self, card: IcaoCard) -> None:
        self.card = card
        self._open = True

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        if not self._open:
            raise CardRemoved("session closed")
        try:
            answer = self.card.process(bytes(apdu))
        except CardGone:
            self._open = False
            raise CardRemoved("the card left the reader") from None
        return answer[:-2], int.from_bytes(answer[-2:], "big")

    def close(self) -> None:
        if self._open:
            self.card.power_off()
        self._open = False


class SimCardReader:
    """SimCardReader(): the default emulated card, made at the first connect; SimCardReader(card):
    that card; lay(None) takes it away (NoCard)."""

    def __init__(self, card: IcaoCard | None = None, *, empty: bool = False) -> None:
        self.card = card
        self._default = card is None and not empty

    def lay(self, card: IcaoCard | None) -> None:
        self.card, self._default = card, False

    def connect(self, timeout: float) -> SimSession:
        if self.card is None and self._default:
            self.card = IcaoCard()
        if self.card is None:
            raise NoCard("no card on the simulated reader")
        self.card.power_on()
        return SimSession(self.card)
