"""A kiosk in a child process (Store + Outbox + FleetClient) for tests that SIGKILL it.

Run as `python tests/fleet_kiosk.py <settings.json>`. It prints one JSON object per line:
{"ready": ...} once started, then one answer per line it reads on stdin:
  add <n> [kind]   queue n records (records/<kind>) -> {"added": n, "first_seq": .., "last_seq": ..}
  event <kind>     queue one event                  -> {"event": kind}
  depth            outbox depth by kind              -> {"depth": {...}}
  stop             clean stop, then exit 0           -> {"stopped": true}
SIGTERM stops it cleanly too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from edge.fleet import FleetClient, queue_event, queue_record
from edge.store import DataKey, Store
from edge.store.outbox import Outbox

HERE = Path(__file__).resolve()


def settings_for(
    state_dir: Path,
    *,
    kiosk_id: str,
    port: int,
    ca: Path,
    cert: Path,
    key: Path,
    trust_dir: Path | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "state_dir": str(state_dir),
        "kiosk_id": kiosk_id,
        "host": "localhost",
        "port": port,
        "ca_file": str(ca),
        "cert_file": str(cert),
        "key_file": str(key),
        "trust_dir": str(trust_dir) if trust_dir else None,
        "telemetry_interval_s": 3600,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        **extra,
    }


class KioskProcess:
    """The test's handle on one child kiosk."""

    def __init__(self, settings: dict[str, Any], workdir: Path) -> None:
        self.settings_path = workdir / "fleet-kiosk.json"
        self.settings_path.write_text(json.dumps(settings))
        self.log_path = workdir / "fleet-kiosk.log"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 10.0) -> dict[str, Any]:
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), str(self.settings_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONPATH": str(HERE.parent.parent)},
        )
        log.close()
        return self._answer(timeout)

    def ask(self, line: str, timeout: float = 20.0) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._answer(timeout)

    def _answer(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        result: dict[str, Any] = {}

        def read() -> None:
            line = self.proc.stdout.readline()
            if line:
                result.update(json.loads(line))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not result:
            raise AssertionError(f"no answer from the kiosk child:\n{self.log()}")
        return result

    def kill(self) -> None:
        """SIGKILL: no clean stop, no 'offline' of its own; the broker must send the will."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def main(settings_path: Path) -> int:
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
    s = json.loads(settings_path.read_text())
    state = Path(s["state_dir"])
    store = Store(state / "kiosk.db")
    store.open()
    outbox = Outbox(store, DataKey.load_or_create(state / "keys" / "data.key"))
    client = FleetClient(
        kiosk_id=s["kiosk_id"],
        store=store,
        outbox=outbox,
        host=s["host"],
        port=s["port"],
        ca_file=Path(s["ca_file"]),
        cert_file=Path(s["cert_file"]),
        key_file=Path(s["key_file"]),
        trust_dir=Path(s["trust_dir"]) if s.get("trust_dir") else None,
        telemetry_interval_s=s["telemetry_interval_s"],
        reconnect_min_s=s["reconnect_min_s"],
        reconnect_max_s=s["reconnect_max_s"],
        inflight_window=s.get("inflight_window", 32),
        protocol=s.get("protocol", "auto"),
        capabilities=["print", "camera"],
        commands={"ping": lambda args: {"pong": args.get("n", 0)}},
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    def say(obj: dict[str, Any]) -> None:
        print(json.dumps(obj), flush=True)

    client.start()
    say({"ready": True, "pid": os.getpid(), "depth": outbox.depth()})

    def serve_stdin() -> None:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "add":
                n, kind = int(words[1]), (words[2] if len(words) > 2 else "copy")
                seqs = [queue_record(outbox, s["kiosk_id"], kind, {"n": i}).seq for i in range(n)]
                client.kick()
                say({"added": n, "first_seq": seqs[0], "last_seq": seqs[-1]})
            elif words[0] == "event":
                queue_event(outbox, s["kiosk_id"], words[1], "warning", {"from": "test"})
                client.kick()
                say({"event": words[1]})
            elif words[0] == "depth":
                say({"depth": outbox.depth()})
            elif words[0] == "stop":
                break
        stopping.set()

    threading.Thread(target=serve_stdin, daemon=True).start()
    stopping.wait()
    client.stop()
    store.close()
    say({"stopped": True})
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
