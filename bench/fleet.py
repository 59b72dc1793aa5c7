"""Fleet figures (issue 6): outbox throughput to a local Mosquitto, and backlog drain time."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.registry import BenchError, figure

KIOSK = "BENCH-01"
RECORDS = 1000


def _drain():  # -> edge.fleet.measure.DrainFigures
    """One measure_drain run: a fresh broker (mTLS, the shipped ACL) and a fresh kiosk store."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        raise BenchError("mosquitto is not installed (apt install mosquitto)")
    from edge.fleet import FleetClient
    from edge.fleet.measure import measure_drain
    from edge.store import DataKey, Store
    from edge.store.outbox import Outbox
    from tests.mqtt_broker import FleetPki, running_broker

    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-fleet-")))
        pki = FleetPki(root / "pki")
        broker = stack.enter_context(running_broker(root / "broker", pki))
        store = Store(root / "kiosk" / "kiosk.db")
        store.open()
        stack.callback(store.close)
        outbox = Outbox(store, DataKey.load_or_create(root / "kiosk" / "keys" / "data.key"))
        me = pki.client(KIOSK)
        client = FleetClient(
            kiosk_id=KIOSK,
            store=store,
            outbox=outbox,
            host="127.0.0.1",
            port=broker.port,
            ca_file=pki.ca_file,
            cert_file=me.cert,
            key_file=me.key,
            reconnect_min_s=0.05,
            reconnect_max_s=0.5,
            telemetry_interval_s=3600,
        )
        client.start()
        stack.callback(client.stop)
        try:
            return measure_drain(
                client,
                outbox,
                records=RECORDS,
                broker_stop=broker.stop,
                broker_start=broker.start,
            )
        except TimeoutError as err:
            raise BenchError(f"fleet drain did not finish: {err}") from err


@figure(f"outbox throughput to local broker ({RECORDS} records)", unit="rec/s")
def outbox_throughput() -> float:
    return _drain().records_per_s


@figure(f"broker back to outbox drained ({RECORDS} queued)", unit="s")
def drained_after_outage() -> float:
    return _drain().after_outage_s
