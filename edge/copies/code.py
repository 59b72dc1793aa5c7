"""Copy codes (`<kiosk>-<yyMMdd>-<seq>-<check>`) and the durable sequence that numbers them.

The check character is ISO 7064 MOD 37,36 (the hybrid system for the 36 characters 0-9 A-Z)
over the code's letters and digits, dashes left out: it catches every single wrong character
and nearly every swap of two neighbouring characters (a hybrid system misses a few: 0.3 % of
neighbour swaps among a code's sequence digits, measured in tests/test_copies.py). The sequence never depends on the clock, and a
number is reserved in a floor file (fsync'd, renamed into place) before anything uses it, so a
crash, a restored older database or a clock stepped back never gives a number twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.errors import BadInput, StoreError
from edge.store.db import Store
from edge.texts import N_, Text
from protocol.files import fsync_dir

logger = logging.getLogger(__name__)

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SEQ_DIGITS = 6
KV_RESERVED = "copies.seq_reserved"
BLOCK = 10
_CODE = re.compile(
    r"^(?P<kiosk>[A-Z0-9][A-Z0-9-]{1,31})-(?P<date>[0-9]{6})-(?P<seq>[0-9]{6,})-(?P<check>[0-9A-Z])$"
)


class CopyRefused(BadInput):
    """A copy request refused. `text` is for the citizen (message_vi: it in Vietnamese, the
    screens translate `text`), message_en for the log; str() is "Vietnamese (English)", as the
    CLI has always shown these refusals. None carries personal data."""

    code = "copy_refused"

    def __init__(self, text: Text, message_en: str) -> None:
        super().__init__(f"{text.vi} ({message_en})")
        self.text = text
        self.message_vi = text.vi
        self.message_en = message_en


def check_char(text: str) -> str:
    """ISO 7064 MOD 37,36 check character of the letters and digits in text ('-' ignored)."""
    m = 36
    p = m
    for ch in text.upper():
        if ch == "-":
            continue
        value = ALPHABET.find(ch)
        if value < 0:
            raise ValueError(f"{ch!r} cannot be in a copy code")
        s = (p + value) % m or m
        p = (s * 2) % (m + 1)
    return ALPHABET[(m + 1 - p) % m]


@dataclass(frozen=True, slots=True)
class CopyCode:
    kiosk_id: str
    day: dt.date
    seq: int

    @property
    def text(self) -> str:
        body = f"{self.kiosk_id}-{self.day:%y%m%d}-{self.seq:0{SEQ_DIGITS}d}"
        return f"{body}-{check_char(body)}"

    def __str__(self) -> str:
        return self.text


def make_code(kiosk_id: str, day: dt.date, seq: int) -> CopyCode:
    if seq < 1:
        raise ValueError("copy numbers start at 1")
    return CopyCode(kiosk_id, day, seq)


def parse_code(text: str) -> CopyCode:
    """A typed or scanned code, checked: spaces dropped, lower case accepted."""
    cleaned = re.sub(r"\s+", "", text).upper()
    match = _CODE.match(cleaned)
    if not match:
        raise CopyRefused(
            Text(N_("Wrong copy code: it is written KIOSK-yyMMdd-number-check")),
            "malformed copy code",
        )
    body = cleaned[:-2]
    if check_char(body) != match["check"]:
        raise CopyRefused(
            Text(N_("Wrong copy code: the check character is wrong, please check it")),
            "check character",
        )
    try:
        day = dt.datetime.strptime(match["date"], "%y%m%d").date()
    except ValueError as err:
        raise CopyRefused(
            Text(N_("Wrong copy code: there is no such date")), "no such date"
        ) from err
    return CopyCode(match["kiosk"], day, int(match["seq"]))


class CopySequence:
    """Hands out copy numbers in blocks: max(database, floor file) + 1 .. + block - 1, the
    block's end written to the floor file (and the database) before its first number is used.

    A number is burnt once reserved, whether or not its copy is finished: a gap is harmless,
    a repeat is not (a restart burns what is left of the block). A flock on `<floor>.lock`
    keeps two processes (daemon and CLI) apart; each takes its own blocks. Blocks spare the
    two fsyncs per copy that an SD card makes slow; a process that issues one copy and exits
    (`kiosk copy issue`) takes block=1, as a bigger block would only burn the rest.
    """

    def __init__(self, store: Store, floor_path: Path, *, block: int = BLOCK) -> None:
        self.store = store
        self.floor_path = floor_path
        self.block = block
        self._next = 0
        self._end = -1
        self._mutex = threading.Lock()

    def reserve(self) -> int:
        with self._mutex:
            if self._next <= self._end:
                self._next += 1
                return self._next - 1
            start, self._end = self._reserve_block()
            self._next = start + 1
            return start

    def _reserve_block(self) -> tuple[int, int]:
        with self._locked():
            db_high = self._db_high()
            file_high = self._read_floor()
            number = max(db_high, file_high) + 1
            end = number + self.block - 1
            self._write_floor(end)
            self.store.set_kv(KV_RESERVED, str(end))
            if file_high < db_high:
                logger.warning(
                    "copy sequence floor file was behind the database (lost or restored)",
                    extra={"floor": file_high, "database": db_high},
                )
            elif db_high < file_high:
                logger.info(
                    "copy sequence floor ahead of the database (burnt numbers or a restored "
                    "database)",
                    extra={"floor": file_high, "database": db_high},
                )
            return number, end

    def high(self) -> int:
        """The highest number reserved so far (0 before the first copy)."""
        return max(self._db_high(), self._read_floor())

    def _db_high(self) -> int:
        rows = self.store.query(
            "SELECT MAX(seq) FROM copies UNION ALL SELECT CAST(value AS INTEGER) FROM kv "
            "WHERE key = ?",
            (KV_RESERVED,),
        )
        return max((r[0] or 0) for r in rows)

    def _read_floor(self) -> int:
        try:
            text = self.floor_path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as err:
            raise StoreError(f"copy sequence floor {self.floor_path} unreadable: {err}") from err
        if not text.isdigit():
            # Written by rename only, so this is damage or tampering: refuse rather than guess.
            raise StoreError(
                f"copy sequence floor {self.floor_path} is damaged; a technician must set it "
                "to at least the highest copy number issued"
            )
        return int(text)

    def _write_floor(self, number: int) -> None:
        self.floor_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.floor_path.with_name(self.floor_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f"{number}\n".encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.floor_path)
        fsync_dir(self.floor_path.parent)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.floor_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = self.floor_path.with_name(self.floor_path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
