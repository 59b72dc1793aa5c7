"""A real PC/SC stack for the tests: our own pcscd with vsmartcard's virtual reader (vpcd), and a
bridge that plays the card to it.

    pyscard -> libpcsclite -> pcscd -> libifdvpcd.so (vpcd) <-TCP- bridge -> card (IcaoCard)

pcscd runs in the foreground, on its own socket (PCSCLITE_CSOCK_NAME for the client library; the
daemon's compiled-in /run/pcscd is our directory, bind-mounted in its mount namespace) and with
its own reader.conf (`pcscd --config FILE`), so a pcscd
the machine may run is left alone. pcscd and the bridge run in their own network and mount
namespaces (`unshare --mount --net`, with a user namespace when not root).

Where vpcd listens. Debian 12's vpcd (vsmartcard 3.3) has two modes, chosen by reader.conf's
DEVICENAME: `/dev/null:PORT` (the package's default) listens on PORT on *every* interface
(INADDR_ANY) and the card connects to it; `HOST:PORT` ("reversed") connects out to a card
listening at HOST. We tried reversed first: it works until the card's connection closes, and
then pcscd aborts ("*** bit out of range 0 - FD_SETSIZE on fd_set ***") at its next poll, so
neither an empty reader nor a pulled card can be played that way. So vpcd listens as packaged,
but in the private network namespace, which has nothing but its own loopback: nothing listens on the
machine's interfaces (`ss -ltnp` shows no vpcd port). pyscard reaches pcscd through its Unix
socket, a path in the file system, which the namespace does not hide.

The vpcd protocol (vsmartcard, virtualsmartcard/src/vpcd/vpcd.c): each message is a 2-byte
big-endian length and the payload. 1-byte payloads are control messages from the reader: 0x00
power off, 0x01 power on, 0x02 reset (no answer), 0x04 "send the ATR" (answered with the ATR).
Anything longer is a command APDU, answered with the response APDU (data + SW1 SW2). A card is
on the reader while its connection is open; closing it is pulling the card.

The bridge runs in that child process, not in a thread of the test: pyscard 2.3.1 holds the GIL
while it waits in SCardListReaders / SCardTransmit, so a bridge thread could not answer the
call it is waiting for. The test drives it over a socketpair (insert a card by naming a
module-level factory the child imports, pull it, count APDUs, stop).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parent.parent
RUN_DIR = "/run/pcscd"  # pcscd's compiled-in ipcdir
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
READER_NAME = "Virtual PCD"
VPCD_PORT = 0x8C7B  # slot 0; Debian's vpcd also opens slot 1 ("Virtual PCD 00 01") on PORT+1
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0x00, 0x01, 0x02, 0x04
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def unavailable() -> str | None:
    """Why the stack cannot run here (None when it can)."""
    if shutil.which("pcscd") is None:
        return "pcscd is not installed (apt-packages.txt [runtime])"
    if not VPCD_DRIVER.exists():
        return "vsmartcard-vpcd is not installed (apt-packages.txt [test])"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare (util-linux) or ip (iproute2) is missing"
    if os.geteuid() != 0 and not os.path.isdir(RUN_DIR):
        # as a user, the namespace can bind a directory on /run/pcscd but not create it there
        return f"not root and no {RUN_DIR} (apt install pcscd creates it)"
    try:
        import smartcard  # noqa: F401
    except ImportError:
        return "pyscard is not installed (the chip extra)"
    return None


class VirtualCard(Protocol):
    """What the bridge needs of a card: edge.sim.icao_card.IcaoCard has this shape."""

    @property
    def atr(self) -> bytes: ...

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def process(self, apdu: bytes) -> bytes: ...


class CardGoneError(Exception):
    """EchoCard's way of leaving the field; the bridge treats any exception from the card so."""


class EchoCard:
    """A trivial test card: SELECT answers 9000; any other command echoes its data + 9000, or
    with Le and no data, Le (or 65536 for extended Le = 0) bytes 0, 1, 2, ... + 9000.
    `gone_after` N APDUs, process() raises CardGoneError."""

    atr = bytes.fromhex("3B8880010000000000718100F8")

    def __init__(self, gone_after: int | None = None) -> None:
        self.gone_after = gone_after
        self.count = 0

    def power_on(self) -> None:
        pass

    def power_off(self) -> None:
        pass

    def process(self, apdu: bytes) -> bytes:
        if self.gone_after is not None and self.count >= self.gone_after:
            raise CardGoneError("the echo card left the field")
        self.count += 1
        if apdu[1] == 0xA4:
            return b"\x90\x00"
        data, le = parse_command(apdu)
        if data:
            return data + b"\x90\x00"
        return bytes(i & 0xFF for i in range(le)) + b"\x90\x00"


def parse_command(apdu: bytes) -> tuple[bytes, int]:
    """(data, Ne) of a command APDU, short or extended length (ISO/IEC 7816-4, 5.1)."""
    body = apdu[4:]
    if not body:
        return b"", 0
    if len(body) == 1:
        return b"", body[0] or 256
    if body[0] == 0 and len(body) == 3:  # extended, Le only
        return b"", int.from_bytes(body[1:3], "big") or 65536
    if body[0] == 0:  # extended: 00 Lc1 Lc2 data [Le1 Le2]
        lc = int.from_bytes(body[1:3], "big")
        rest = body[3 + lc :]
        return body[3 : 3 + lc], (int.from_bytes(rest, "big") or 65536) if rest else 0
    lc = body[0]
    rest = body[1 + lc :]
    return body[1 : 1 + lc], (rest[0] or 256) if rest else 0


# --- the child: pcscd + the bridge, inside the namespace ------------------------------------


class _Slot:
    """Slot 0's card: a connection to vpcd while a card is on the reader."""

    def __init__(self) -> None:
        self.apdus = 0
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()

    def insert(self, card: VirtualCard) -> None:
        self.pull()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", VPCD_PORT), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        conn.settimeout(None)
        with self._lock:
            self._conn = conn
            self.apdus = 0
        threading.Thread(target=self._talk, args=(conn, card), daemon=True).start()

    def pull(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _talk(self, conn: socket.socket, card: VirtualCard) -> None:
        try:
            while True:
                message = _recv_message(conn)
                if message is None:
                    break
                answer = self._answer(card, message)
                if answer is not None:
                    conn.sendall(struct.pack(">H", len(answer)) + answer)
        except OSError:
            pass
        except Exception:  # the card raised (CardGone): it left the field
            pass
        with self._lock:
            if self._conn is conn:
                self._conn = None
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()

    def _answer(self, card: VirtualCard, message: bytes) -> bytes | None:
        if len(message) == 1:
            if message[0] == CTRL_ATR:
                return card.atr
            if message[0] == CTRL_ON:
                card.power_on()
            elif message[0] == CTRL_OFF:
                card.power_off()
            elif message[0] == CTRL_RESET:
                card.power_off()
                card.power_on()
            return None
        self.apdus += 1
        return card.process(message)


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _recv_message(conn: socket.socket) -> bytes | None:
    header = _recv_exact(conn, 2)
    if header is None:
        return None
    (size,) = struct.unpack(">H", header)
    return _recv_exact(conn, size) if size else b""


def _child_main(control_fd: int, conf: str, sock: str, log: str) -> int:
    control = Connection(control_fd)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=STOP_TIMEOUT)
    # Debian's pcscd (1.9.9) ignores PCSCLITE_CSOCK_NAME (only the client library reads it) and
    # always uses /run/pcscd/{pcscd.comm,pcscd.pid}, which it also deletes on exit: in this
    # private mount namespace /run/pcscd is our directory, so a system pcscd is not touched.
    os.makedirs(RUN_DIR, exist_ok=True)
    subprocess.run(
        ["mount", "--bind", os.path.dirname(sock), RUN_DIR], check=True, timeout=STOP_TIMEOUT
    )
    with open(log, "wb") as out:
        pcscd = subprocess.Popen(
            ["pcscd", "--foreground", "--config", conf],
            env={**os.environ, "PCSCLITE_CSOCK_NAME": sock},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    slot = _Slot()
    control.send(("ready", pcscd.pid))
    try:
        while True:
            try:
                command = control.recv()
            except EOFError:  # the test process went away
                return 0
            try:
                if command[0] == "insert":
                    _, factory, kwargs = command
                    card = factory(**kwargs)
                    slot.insert(card)
                    anchor = getattr(card, "trust_anchor", None)  # IcaoCard: its CSCA (DER)
                    control.send(anchor() if anchor is not None else None)
                elif command[0] == "pull":
                    slot.pull()
                    control.send(None)
                elif command[0] == "apdus":
                    control.send(slot.apdus)
                elif command[0] == "pcscd":
                    control.send(pcscd.poll())
                elif command[0] == "stop":
                    control.send(None)
                    return 0
            except Exception as error:  # reported to the test, which raises it
                control.send(error)
    finally:
        slot.pull()
        if pcscd.poll() is None:
            pcscd.send_signal(signal.SIGTERM)
            try:
                pcscd.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pcscd.kill()
                pcscd.wait(STOP_TIMEOUT)


# --- the test side ----------------------------------------------------------------------------


@dataclass
class VirtualReader:
    """pcscd + vpcd + the bridge, running; `socket_name` is pcscd's PCSCLITE_CSOCK_NAME."""

    socket_name: str
    log: Path
    _control: Connection
    _process: subprocess.Popen[bytes]
    pcscd_pid: int

    def _call(self, *command: object) -> Any:
        self._control.send(command)
        if not self._control.poll(START_TIMEOUT + STOP_TIMEOUT):
            raise TimeoutError(f"the vpcd bridge did not answer {command[0]!r}")
        answer = self._control.recv()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def insert(self, factory: Callable[..., VirtualCard], **kwargs: object) -> bytes | None:
        """Lay a card on the reader: `factory(**kwargs)`, built in the bridge's process. Returns
        the card's trust anchor (IcaoCard.trust_anchor(): the CSCA made in that process)."""
        return self._call("insert", factory, kwargs)

    def pull(self) -> None:
        """Take the card away (its connection to vpcd closes)."""
        self._call("pull")

    @property
    def apdus(self) -> int:
        """Command APDUs the card on the reader has answered since it was inserted."""
        return int(self._call("apdus"))

    def pcscd_exit(self) -> int | None:
        return self._call("pcscd")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(OSError, TimeoutError, EOFError):
                self._call("stop")
            try:
                self._process.wait(STOP_TIMEOUT + 2)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(STOP_TIMEOUT)
        self._control.close()


def socket_name() -> str:
    """One pcscd socket path per test process: libpcsclite reads PCSCLITE_CSOCK_NAME once, at
    its first call, and keeps it; every pcscd this process starts uses the same path."""
    global _SOCKET_DIR
    if _SOCKET_DIR is None:
        _SOCKET_DIR = tempfile.mkdtemp(prefix="kiosk-pcscd-")
        atexit.register(shutil.rmtree, _SOCKET_DIR, True)
    return os.path.join(_SOCKET_DIR, "pcscd.comm")  # pcscd's name in RUN_DIR


_SOCKET_DIR: str | None = None


def _wait_for_readers(reader: VirtualReader, expect_reader: bool, deadline: float) -> None:
    from smartcard.System import readers

    while time.monotonic() < deadline:
        code = reader.pcscd_exit()
        if code is not None:
            raise RuntimeError(f"pcscd exited with {code}:\n{reader.log_text()[-2000:]}")
        if not expect_reader:
            if Path(reader.socket_name).exists():
                return
        else:
            with contextlib.suppress(Exception):  # pcscd not answering yet
                if any(READER_NAME in str(r) for r in readers()):
                    return
        time.sleep(0.1)
    raise TimeoutError(f"pcscd and its reader not ready within {START_TIMEOUT} s")


@contextlib.contextmanager
def virtual_reader(workdir: Path, *, with_reader: bool = True) -> Iterator[VirtualReader]:
    """pcscd with vpcd (or, `with_reader=False`, with no reader at all) and the bridge, in
    their own network namespace; both stopped on exit, within bounded timeouts."""
    workdir.mkdir(parents=True, exist_ok=True)
    sock = socket_name()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock)  # a previous pcscd's, if it died without cleaning up
    os.environ["PCSCLITE_CSOCK_NAME"] = sock  # this process's libpcsclite (pyscard)
    conf = workdir / "reader.conf"
    conf.write_text(
        (
            f'FRIENDLYNAME "{READER_NAME}"\n'
            f"DEVICENAME   /dev/null:0x{VPCD_PORT:X}\n"
            f"LIBPATH      {VPCD_DRIVER}\n"
        )
        if with_reader
        else "# no reader\n"
    )
    log = workdir / "pcscd.log"
    ours, theirs = socket.socketpair()
    unshare = ["unshare", "--mount", "--net"]
    if not _any_shared_mount():
        # Nothing can propagate out of the namespace anyway; and in a chroot (whose "/" is no
        # mount point) unshare's default "make / private" fails: "cannot change root filesystem
        # propagation". Found running .ci/run in a Debian chroot.
        unshare.append("--propagation=unchanged")
    if os.geteuid() != 0:
        unshare.insert(1, "--map-root-user")
    process = subprocess.Popen(
        [
            *unshare,
            sys.executable,
            "-m",
            "tests.vpcd",
            str(theirs.fileno()),
            str(conf),
            sock,
            str(log),
        ],
        pass_fds=(theirs.fileno(),),
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), *sys.path]))},
        start_new_session=True,
    )
    theirs.close()
    control = Connection(ours.detach())
    if not control.poll(START_TIMEOUT):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT)
        control.close()
        raise TimeoutError("the vpcd bridge did not start")
    _, pcscd_pid = control.recv()
    reader = VirtualReader(sock, log, control, process, pcscd_pid)
    try:
        _wait_for_readers(reader, with_reader, time.monotonic() + START_TIMEOUT)
        yield reader
    finally:
        reader.stop()


def _any_shared_mount() -> bool:
    """Does any mount of this namespace propagate to peers (mountinfo's optional "shared:N")?"""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return True
    return any("shared:" in line.split(" - ")[0] for line in lines)


if __name__ == "__main__":
    sys.exit(_child_main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]))
