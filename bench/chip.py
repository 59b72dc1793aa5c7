"""Chip figures (issue 17): connect, BAC, each data group, passive authentication and the whole
read_chip, per reader. The simulated reader (the emulated card in process) is registered here;
another reader (pcscd + vpcd) registers itself with `register_reader(label, factory)`, where
factory() gives (CardReader, MrzKey, TrustList) for a card laid on it.

`python -m bench --only chip` prints the table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.registry import BenchError, figure

ReaderFactory = Callable[[], tuple[Any, Any, Any]]  # (CardReader, MrzKey, TrustList)
STEPS = (
    ("connect", "connect (card powered)"),
    ("bac", "BAC (GET CHALLENGE + MUTUAL AUTHENTICATE)"),
    ("read_COM", "read EF.COM"),
    ("read_DG1", "read DG1 (MRZ)"),
    ("read_DG2", "read DG2 (portrait)"),
    ("read_DG13", "read DG13 (personal data)"),
    ("read_SOD", "read EF.SOD"),
    ("passive_auth", "passive authentication"),
    ("total", "end to end (read_chip)"),
)


def _one_read(factory: ReaderFactory, extended: bool) -> dict[str, float]:
    from edge.identity.chip import read_chip

    reader, key, trust = factory()
    reading = read_chip(reader, key, trust, extended_length=extended)
    if reading.passive_auth != "valid":
        raise BenchError(f"the bench card did not authenticate: {reading.reason}")
    return reading.timings_ms


def register_reader(label: str, factory: ReaderFactory, *, extended: bool = False) -> None:
    """One figure per step for this reader; each sample is a fresh, complete read_chip."""
    for step, title in STEPS:

        def sample(step: str = step) -> float:
            return _one_read(factory, extended)[step]

        figure(f"chip {label}: {title}", unit="ms")(sample)


def _sim_factory() -> tuple[Any, Any, Any]:
    from edge.adapters.cardreader_sim import SimCardReader
    from edge.identity.chip import TrustList
    from edge.sim.icao_card import IcaoCard

    card = _sim_card()
    assert isinstance(card, IcaoCard)
    return SimCardReader(card), card.holder.mrz_key(), TrustList.of(card.trust_anchor())


_CARD: list[Any] = []


def _sim_card() -> Any:
    from edge.sim.icao_card import IcaoCard

    if not _CARD:
        _CARD.append(IcaoCard())
    return _CARD[0]


register_reader("sim, short Le", _sim_factory)
register_reader("sim, extended Le", _sim_factory, extended=True)


# --- pcscd + vpcd: the same read through the real PC/SC stack (tests/vpcd.py) ----------------
# pyscard -> libpcsclite -> our own pcscd -> vsmartcard's vpcd -> the bridge -> IcaoCard, the
# bridge and pcscd in their own namespaces; started at the first sample, stopped at exit.

_PCSC: list[Any] = []


def _pcsc_factory() -> tuple[Any, Any, Any]:
    from edge.adapters.cardreader_pcsc import PcscCardReader
    from edge.identity.chip import TrustList
    from edge.sim.icao_card import IcaoCard, sample_holder

    if not _PCSC:
        import atexit
        import contextlib
        import tempfile
        from pathlib import Path

        from tests.vpcd import unavailable, virtual_reader

        why = unavailable()
        if why:
            raise BenchError(why)
        stack = contextlib.ExitStack()
        atexit.register(stack.close)
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pcsc-")))
        running = stack.enter_context(virtual_reader(root))
        anchor = running.insert(IcaoCard)  # built in the bridge's process, kept on the reader
        if anchor is None:
            raise BenchError("the virtual card gave no trust anchor")
        _PCSC.append(TrustList.of(anchor))
    return PcscCardReader("Virtual PCD"), sample_holder().mrz_key(), _PCSC[0]


register_reader("pcscd+vpcd, short Le", _pcsc_factory)
register_reader("pcscd+vpcd, extended Le", _pcsc_factory, extended=True)
