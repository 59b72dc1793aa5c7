"""The chip reader as configured ([card_reader]): the port's adapter, the trust list, the timeout.

Chosen like the A4 printer's adapters (edge.certify.requests.a4printer_from_config): imported
only when configured, no I/O until used. `sim`: the emulated card in process, trusted through the
emulator's development CSCA; its readings say development=True.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from edge.identity.chip.pa import TrustList
from edge.ports.cardreader import CardReader


@dataclass(frozen=True)
class ChipReader:
    reader: CardReader
    trust: TrustList
    timeout_s: float
    development: bool  # the simulated reader and card


def chip_reader_from_config(config: Any) -> ChipReader | None:
    """[card_reader] as a ChipReader, or None (adapter = "none")."""
    section = config.card_reader
    if section.adapter == "sim":
        from edge.adapters.cardreader_sim import SimCardReader
        from edge.sim.icao_card import development_csca

        # The card is made when first laid on the reader; the anchor is the emulator's CSCA.
        return ChipReader(
            SimCardReader(), TrustList.of(development_csca().der()), section.timeout_s, True
        )
    if section.adapter == "pcsc":
        # edge.adapters.cardreader_pcsc (pyscard): PcscCardReader(reader name part or None)
        pcsc = importlib.import_module("edge.adapters.cardreader_pcsc")
        reader = pcsc.PcscCardReader(section.reader or None)
        return ChipReader(
            reader, TrustList.from_directory(section.trust_dir), section.timeout_s, False
        )
    return None
