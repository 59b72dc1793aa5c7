"""20,000 kiosks against one Mosquitto and central on PostgreSQL (issue 20): sustained ingest,
end-to-end lag, dashboard latency under load, and a console worker then the broker restarted.

    python -m bench.fleet_scale [--quick] [--workers N] [--kiosks 20000]

How the kiosks are simulated: one load-generator process multiplexes every kiosk id over
CONNECTIONS MQTT connections (mTLS, MQTT 5, QoS 1), each with a bench-only identity
(CN bench-loadgen-<n>) whose ACL line lets it write kiosk/v1/# - a real kiosk may only write its
own tree, and these identities exist only in the bench's temporary PKI and ACL, never shipped.
20,000 light clients of their own would cost this 2-core machine more in TLS handshakes and
Python threads than the console under test. Each kiosk sends telemetry/1 every 60 s (kiosks
spread evenly over the minute: 333 msg/s), events at EVENTS_PER_KIOSK_H and records at
RECORDS_PER_KIOSK_H (a busy hour: 100 services in a 10-hour day); its `time` is the moment it
is published.

Everything else is real: Mosquitto from config/mosquitto/mosquitto.conf (the shipped ACL plus
the load generator's lines), PostgreSQL 15 in a temporary directory, the console as
`python -m fleet.cli serve` subprocesses (--workers N of them; more than one needs multi-worker
ingest: the [mqtt] shared_group setting and the ACL's fleet-worker-<n> identities).

Measured: messages stored per second, lag from a kiosk's timestamp to the row being visible in
PostgreSQL (committed; an observer polls every POLL_S, so add up to that), GET / and a kiosk page
while the load runs, and after a SIGKILLed worker (restarted at once, as systemd would) and a
broker restart (SIGTERM, persistence written, started again), how long until stored telemetry is
back under CAUGHT_UP_S of lag, and what was lost: every message the broker acknowledged to the
load generator is looked up by id ((kiosk, time) for telemetry) in the database at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import multiprocessing as mp
import os
import queue
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONNECTIONS = 6
LOADGEN = "bench-loadgen"
TELEMETRY_S = 60.0
EVENTS_PER_KIOSK_H = 6.0
RECORDS_PER_KIOSK_H = 10.0
POLL_S = 0.25
LOOK_BACK = 12  # polls (3 s): longer than a batch's transaction
CAUGHT_UP_S = 2.0  # lag under this for a whole second after a restart: caught up
PASSWORD = "bench-password-1"
SITES = ["HN-TAYHO", "HN-BADINH", "HN-HOANKIEM", "HN-CAUGIAY", "HN-DONGDA", "VNP-HANOI"]


def kiosk_ids(n: int) -> list[str]:
    return [f"{SITES[i % len(SITES)]}-{i:05d}" for i in range(n)]


def iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat()


def key_time(text: str) -> float:
    """The float the console stores for a `time` (fleet.store.ingest.parse_time), rounded."""
    return round(dt.datetime.fromisoformat(text).timestamp(), 6)


# --- the load generator (its own process) -------------------------------------------------


@dataclass
class Plan:
    port: int
    ca: str
    identities: list[tuple[str, str]]  # (cert, key) per connection
    kiosks: int
    phases: list[tuple[str, float]]  # (name, seconds) of load, in order
    out: str  # where the acknowledged ids go (JSON)
    marks: Any = None  # mp.Queue: (phase name, start time) as each phase begins
    go: Any = None  # mp.Event: the parent says when a phase may end (restarts done)


def loadgen(plan: Plan) -> None:
    from pathlib import Path

    from protocol.mqtt import new_client, tls_context

    ids = kiosk_ids(plan.kiosks)
    lock = threading.Lock()
    pending: dict[tuple[int, int], tuple[str, Any]] = {}
    early: set[tuple[int, int]] = set()
    acked: dict[str, list[Any]] = {"telemetry": [], "event": [], "record": [], "state": []}
    clients = []
    for n, (cert, key) in enumerate(plan.identities):
        c = new_client(f"{LOADGEN}-{n}", tls=tls_context(Path(plan.ca), Path(cert), Path(key)))
        c.reconnect_delay_set(1, 2)
        c.max_inflight_messages_set(200)
        c.max_queued_messages_set(0)  # unbounded: held while the broker is away, then sent

        def on_publish(
            client: Any, userdata: Any, mid: int, rc: Any, props: Any, n: int = n
        ) -> None:
            with lock:
                item = pending.pop((n, mid), None)
                if item is None:
                    early.add((n, mid))  # acknowledged before publish() returned
                else:
                    acked[item[0]].append(item[1])

        c.on_publish = on_publish
        c.connect_async("127.0.0.1", plan.port, keepalive=30, clean_start=True)
        c.loop_start()
        clients.append(c)
    deadline = time.monotonic() + 20
    while not all(c.is_connected() for c in clients):
        if time.monotonic() > deadline:
            raise SystemExit("load generator: not connected")
        time.sleep(0.05)
    seq = dict.fromkeys(ids, 0)
    rng = random.Random(20)
    sent = 0

    def publish(
        kiosk: str, sub: str, kind: str, body: dict[str, Any], retain: bool = False
    ) -> None:
        nonlocal sent
        seq[kiosk] += 1
        body = {"kiosk_id": kiosk, "seq": seq[kiosk], **body}
        n = sent % len(clients)
        sent += 1
        key = body["id"] if kind in ("event", "record") else (kiosk, key_time(body["time"]))
        # not under `lock`: paho calls on_publish holding its own lock
        info = clients[n].publish(f"kiosk/v1/{kiosk}/{sub}", json.dumps(body), 1, retain)
        with lock:
            if (n, info.mid) in early:
                early.discard((n, info.mid))
                acked[kind].append(key)
            else:
                pending[(n, info.mid)] = (kind, key)

    # Births: every kiosk says it is online (retained), as on boot.
    for k in ids:
        now = time.time()
        publish(
            k,
            "state",
            "state",
            {
                "schema": "state/1",
                "id": f"{k}-boot",
                "state": "online",
                "time": iso(now),
                "version": "0.1.0",
                "capabilities": ["printer", "camera"],
                "protocol": "5",
                "status": {"locked": False},
            },
            retain=True,
        )
    plan.marks.put(("births-sent", time.time()))
    plan.go.wait(600)  # the parent has seen every birth stored: the load starts from there
    plan.go.clear()
    start = time.time()
    per_s_events = plan.kiosks * EVENTS_PER_KIOSK_H / 3600
    per_s_records = plan.kiosks * RECORDS_PER_KIOSK_H / 3600
    offsets = sorted((i * TELEMETRY_S / plan.kiosks, k) for i, k in enumerate(ids))
    cursor = 0  # next kiosk due in `offsets`, the minute being `minute`
    minute = 0
    ev_due = rec_due = 0.0
    for name, seconds in plan.phases:
        plan.marks.put((name, time.time()))
        end = time.time() + seconds
        restart = name.startswith("restart")
        while time.time() < end or (restart and not plan.go.is_set()):
            now = time.time()
            if restart and not plan.go.is_set():
                end = now + seconds  # the phase's time runs from the restart on
            # telemetry: each kiosk at its offset in every minute
            while start + minute * TELEMETRY_S + offsets[cursor][0] <= now:
                k = offsets[cursor][1]
                t = time.time()
                publish(k, "telemetry", "telemetry", telemetry_body(k, seq[k] + 1, t))
                cursor += 1
                if cursor == len(offsets):
                    cursor, minute = 0, minute + 1
            ev_due += per_s_events * 0.05
            rec_due += per_s_records * 0.05
            while ev_due >= 1:
                ev_due -= 1
                k = rng.choice(ids)
                publish(k, "events", "event", event_body(k, seq[k] + 1, time.time()))
            while rec_due >= 1:
                rec_due -= 1
                k = rng.choice(ids)
                publish(k, "records/service", "record", record_body(k, seq[k] + 1, time.time()))
            time.sleep(max(0.0, 0.05 - (time.time() - now)))
        if name.startswith("restart"):
            plan.go.clear()
    plan.marks.put(("load-end", time.time()))
    # Let what is in flight be acknowledged (the broker may just have come back).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lock:
            if not pending:
                break
        time.sleep(0.1)
    with lock:
        unacked = len(pending)
        Path(plan.out).write_text(json.dumps({"acked": acked, "unacked": unacked}))
    for c in clients:
        c.disconnect()
        c.loop_stop()


def telemetry_body(kiosk: str, seq: int, at: float) -> dict[str, Any]:
    return {
        "schema": "telemetry/1",
        "id": f"{kiosk}-t{seq}",
        "time": iso(at),
        "queued_at": iso(at),
        "uptime_s": 1000.0 + seq,
        "system": {
            "load": [0.3, 0.2, 0.1],
            "cpu_temp_c": 45.0 + seq % 30,
            "memory": {"total_mb": 4000, "available_mb": 3100, "used_pct": 22.5},
            "disk": {"total_mb": 30000, "free_mb": 20000, "used_pct": 33.3},
        },
        "outbox": {"record": seq % 3, "event": 0, "telemetry": 0},
        "fleet": {"connected": True, "protocol": "5", "inflight": 0},
        "printer": {"online": True, "paper": "ok"},
        "camera": {"ok": True},
        "versions": {"software": "0.1.0"},
    }


def event_body(kiosk: str, seq: int, at: float) -> dict[str, Any]:
    return {
        "schema": "event/1",
        "id": f"{kiosk}-e{seq}",
        "kind": "service.completed",
        "severity": "info",
        "time": iso(at),
        "detail": {"service": "copy"},
    }


def record_body(kiosk: str, seq: int, at: float) -> dict[str, Any]:
    return {
        "schema": "record/1",
        "id": f"{kiosk}-r{seq}",
        "kind": "service",
        "time": iso(at),
        "data": {"service": "copy", "pages": 2, "fee_vnd": 4000},
    }


# --- central: PostgreSQL, the broker, console workers -------------------------------------


@dataclass
class Worker:
    n: int
    conf: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fleet.cli", "-c", str(self.conf), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.conf.parent,
                start_new_session=True,
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None


ROOT = Path(__file__).resolve().parent.parent


def shared_group_key() -> str | None:
    """The [mqtt] setting naming a shared-subscription group, where multi-worker ingest has
    landed (none: one console only)."""
    from fleet.config import MqttSection

    names = [n for n in MqttSection.model_fields if "share" in n]
    return names[0] if names else None


def worker_toml(
    root: Path, n: int, *, shared: bool, url: str, broker: Any, pki: Any, web_port: int
) -> Path:
    """Worker n's configuration: one console is fleet-central, as shipped; several are
    fleet-worker-<n> on the shared group "fleet" (the ACL's worker blocks)."""
    from tests.mqtt_broker import CENTRAL

    cn = f"fleet-worker-{n}" if shared else CENTRAL
    me = pki.client(cn)
    mqtt = [
        'host = "localhost"',
        f"port = {broker.port}",
        f'ca_file = "{pki.ca_file}"',
        f'cert_file = "{me.cert}"',
        f'key_file = "{me.key}"',
        f'client_id = "{cn}"',
    ]
    group = shared_group_key()
    if shared and group is not None:
        mqtt.append(f'{group} = "fleet"')
    text = (
        f'[store]\nurl = "{url}"\ndata_key_file = "{root / "data.key"}"\n'
        "[mqtt]\n" + "\n".join(mqtt) + "\n"
        f'[web]\nport = {web_port}\nsecret_key_file = "{root / "secret.key"}"\n'
        "cookie_secure = false\n"
        f'[provisioning]\nsecrets_key_file = "{root / "claims.key"}"\n'
        "[dossiers]\nseed_samples = false\n"
        '[logging]\nlevel = "WARNING"\n'
    )
    path = root / f"worker-{n}" / "fleet.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- what the database shows ----------------------------------------------------------------


@dataclass
class Observer:
    """Polls PostgreSQL for newly committed telemetry: (seen at, lag) per row."""

    url: str
    seen: list[tuple[float, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        import psycopg

        dsn = self.url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:
            # A row numbered before another that is already visible can commit later (another
            # batch, another worker): look back as far as the highest row of LOOK_BACK polls ago.
            highs = [0]
            got: set[int] = set()
            while not self.stop.wait(POLL_S):
                floor = highs[0]
                rows = conn.execute(
                    'SELECT "row", at FROM telemetry WHERE "row" > %s', (floor,)
                ).fetchall()
                now = time.time()
                for row, at in rows:
                    if row not in got:
                        got.add(row)
                        self.seen.append((now, now - at))
                highs = [*highs, max([highs[-1], *got])][-LOOK_BACK:]
                got = {r for r in got if r > highs[0]}

    def window(self, start: float, end: float) -> list[float]:
        return [lag for at, lag in self.seen if start <= at < end]

    def longest_gap(self, start: float, end: float) -> tuple[float, float]:
        """The longest time in [start, end) with no telemetry row showing up (ingest paused):
        (its length, when rows came again)."""
        times = [start, *sorted(at for at, _ in self.seen if start <= at < end), end]
        return max(((b - a, b) for a, b in itertools.pairwise(times)), default=(0.0, start))

    def caught_up(self, since: float, until: float) -> float | None:
        """Seconds from `since` to the first whole second, after the pause, whose stored
        telemetry all had lag under CAUGHT_UP_S (None: not before `until`)."""
        _, resumed = self.longest_gap(since, until)
        buckets: dict[int, list[float]] = {}
        for at, lag in self.seen:
            if resumed <= at < until:
                buckets.setdefault(int(at - resumed), []).append(lag)
        for second in sorted(buckets):
            if max(buckets[second]) < CAUGHT_UP_S:
                return resumed - since + second + 1
        return None

    def timeline(self, since: float, until: float, step: float = 5.0) -> str:
        """Rows stored and their worst lag per `step` seconds: '0-5s 1210 rows/2.1s ...'."""
        out = []
        t = since
        while t < until:
            lags = self.window(t, t + step)
            worst = f"{max(lags):.1f}s" if lags else "-"
            out.append(f"+{t - since:.0f}s {len(lags)}/{worst}")
            t += step
        return " ".join(out)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def counts(engine: Any, tables: tuple[str, ...] = ("telemetry", "events", "records")) -> int:
    import sqlalchemy as sa

    with engine.connect() as conn:
        return sum(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables)


def distinct(engine: Any) -> int:
    """Messages stored, each once (telemetry, which has no id column, by kiosk and time)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM (SELECT DISTINCT kiosk_id, at FROM telemetry) t)"
                " + (SELECT count(*) FROM events) + (SELECT count(*) FROM records)"
            )
        ).scalar_one()


def settle(engine: Any, want: int, timeout: float) -> float:
    """Seconds until the stored count reaches `want`, or stops growing for 45 s (then the
    accounting by id says what is missing)."""
    start = last_change = time.monotonic()
    last = -1
    while time.monotonic() - start < timeout:
        have = distinct(engine)
        if have >= want:
            break
        if have != last:
            last, last_change = have, time.monotonic()
        elif time.monotonic() - last_change > 45:  # the console's reconnect backs off to 30 s
            break
        time.sleep(1.0)
    return time.monotonic() - start


def wait_for(predicate: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"bench: {what} not within {timeout:.0f} s")
        time.sleep(0.25)
    return time.monotonic() - start


def dashboard(base: str, paths: list[str], samples: list[tuple[str, float]]) -> None:
    from bench.fleet_console import _login

    opener = _login(base)
    for path in paths:
        start = time.perf_counter()
        with opener.open(base + path, timeout=60) as response:
            response.read()
            if response.status != 200 or "/login" in response.geturl():
                raise SystemExit(f"bench: GET {path} answered {response.status}")
        samples.append((path, (time.perf_counter() - start) * 1000))


# --- the run --------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from fleet.operators import create_operator
    from fleet.store import FleetStore
    from protocol.crypto import DataKey
    from tests.fleet_console_helpers import Postgres
    from tests.mqtt_broker import BROKER_ACL, Broker, FleetPki, free_port

    if args.workers > 1 and shared_group_key() is None:
        print(
            "--workers N > 1 needs multi-worker ingest (a shared-subscription group in [mqtt]); "
            "this tree has none: run with --workers 1",
            file=sys.stderr,
        )
        return 2
    steady = 15.0 if args.quick else 120.0
    after = 8.0 if args.quick else 40.0
    phases = [("steady", steady), ("restart-worker", after), ("restart-broker", after)]
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scale-")))
        pg = Postgres()
        stack.callback(pg.stop)
        pg.start()
        pki = FleetPki(root / "pki")
        broker = Broker(root / "broker", pki)
        acl = root / "bench.acl"
        acl.write_text(
            BROKER_ACL.read_text()
            + "\n# bench only: the load generator speaks for every kiosk (never shipped)\n"
            + "".join(f"user {LOADGEN}-{i}\ntopic write kiosk/v1/#\n" for i in range(CONNECTIONS))
        )
        broker.conf.write_text(
            broker.conf.read_text().replace(f"acl_file {BROKER_ACL}", f"acl_file {acl}")
        )
        broker.start()
        stack.callback(broker.stop)
        store = FleetStore(pg.url, data_key=DataKey.load_or_create(root / "data.key")).create()
        create_operator(store, "bench.operator", "Bench", PASSWORD)
        store.close()
        engine = sa.create_engine(pg.url)
        stack.callback(engine.dispose)
        workers = []
        for n in range(1, args.workers + 1):
            port = free_port()
            conf = worker_toml(
                root, n, shared=args.workers > 1, url=pg.url, broker=broker, pki=pki, web_port=port
            )
            w = Worker(n, conf, port, root / f"worker-{n}.log")
            w.start()
            stack.callback(w.kill)
            workers.append(w)
        base = f"http://127.0.0.1:{workers[0].port}"
        wait_for(lambda: _answers(base), 60, "the console's web page")
        time.sleep(2)  # its MQTT session up
        identities = [pki.client(f"{LOADGEN}-{i}") for i in range(CONNECTIONS)]
        marks: Any = mp.Queue()
        go: Any = mp.Event()
        plan = Plan(
            port=broker.port,
            ca=str(pki.ca_file),
            identities=[(str(i.cert), str(i.key)) for i in identities],
            kiosks=args.kiosks,
            phases=phases,
            out=str(root / "acked.json"),
            marks=marks,
            go=go,
        )
        t0 = time.time()
        gen = mp.get_context("fork").Process(target=loadgen, args=(plan,), daemon=True)
        gen.start()
        stack.callback(lambda: gen.kill() if gen.is_alive() else None)
        observer = Observer(pg.url)
        thread = threading.Thread(target=observer.run, daemon=True)
        thread.start()
        stack.callback(observer.stop.set)
        times: dict[str, float] = {}

        def mark(name: str, timeout: float) -> float:
            deadline = time.monotonic() + timeout
            while name not in times:
                if not gen.is_alive() or time.monotonic() > deadline:
                    raise SystemExit(f"bench: the load generator did not reach {name}")
                with contextlib.suppress(queue.Empty):
                    got, at = marks.get(timeout=1)
                    times[got] = at
            return times[name]

        mark("births-sent", 300)
        wait_for(lambda: counts(engine, ("kiosks",)) >= args.kiosks, 300, "every kiosk's birth")
        go.set()
        births_total = time.time() - t0
        s0 = mark("steady", 60)
        c0 = counts(engine)
        samples: list[tuple[str, float]] = []
        some = kiosk_ids(args.kiosks)[7]
        rounds = 2 if args.quick else 5
        gap = steady / (rounds + 1)
        for _ in range(rounds):
            time.sleep(gap)
            dashboard(base, ["/", f"/kiosks/{some}"], samples)
        r0 = mark("restart-worker", steady + 60)
        c1 = counts(engine)
        steady_s = r0 - s0
        # a console worker SIGKILLed mid-stream and started again at once
        victim = workers[-1]
        kill_at = time.time()
        victim.kill(signal.SIGKILL)
        victim.start()
        go.set()
        mark("restart-broker", after + 120)
        broker_at = time.time()
        broker.stop()
        broker.start()
        go.set()
        end_at = mark("load-end", after + 120)
        gen.join(120)
        sent = json.loads(Path(plan.out).read_text())
        acked = sent["acked"]
        want = len(acked["telemetry"]) + len(acked["event"]) + len(acked["record"])
        drain_s = settle(engine, want, 180)
        time.sleep(2 * POLL_S)
        observer.stop.set()
        thread.join(5)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT kiosk_id, at FROM telemetry")).all()
            event_ids = set(conn.execute(sa.text("SELECT id FROM events")).scalars())
            record_ids = set(conn.execute(sa.text("SELECT id FROM records")).scalars())
            redelivered = conn.execute(
                sa.text("SELECT coalesce(sum(deliveries - 1), 0) FROM records")
            ).scalar_one()
            parts = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass('telemetry')"
                )
            ).scalar_one()
        stored_t = [(k, round(at, 6)) for k, at in rows]
        lost_t = {tuple(x) for x in acked["telemetry"]} - set(stored_t)
        dup_t = len(stored_t) - len(set(stored_t))
        lost_e = set(acked["event"]) - event_ids
        lost_r = set(acked["record"]) - record_ids
        lags = observer.window(s0, r0)
        per_h = EVENTS_PER_KIOSK_H + RECORDS_PER_KIOSK_H
        table = [
            ("kiosks simulated", f"{args.kiosks}", f"{CONNECTIONS} MQTT connections, 1 process"),
            ("console workers", f"{args.workers}", "python -m fleet.cli serve, PostgreSQL 15"),
            ("telemetry partitions", f"{parts}", "day partitions + DEFAULT (revision 0007)"),
            ("births stored", f"{births_total:.1f} s", f"{args.kiosks} state/1, retained"),
            (
                "offered load",
                f"{args.kiosks / TELEMETRY_S + per_h * args.kiosks / 3600:.0f} msg/s",
                f"telemetry every {TELEMETRY_S:.0f} s; {EVENTS_PER_KIOSK_H:.0f} events, "
                f"{RECORDS_PER_KIOSK_H:.0f} records per kiosk-hour",
            ),
            ("sustained ingest", f"{(c1 - c0) / steady_s:.0f} msg/s", "stored, steady phase"),
            ("steady phase", f"{steady_s:.0f} s", ""),
            ("lag p50 (time -> committed)", f"{pct(lags, 50) * 1000:.0f} ms", f"{len(lags)} rows"),
            ("lag p95", f"{pct(lags, 95) * 1000:.0f} ms", f"poll every {POLL_S * 1000:.0f} ms"),
            ("lag max", f"{max(lags, default=float('nan')) * 1000:.0f} ms", ""),
        ]
        for path in ("/", f"/kiosks/{some}"):
            ms = [m for p, m in samples if p == path]
            label = "GET /" if path == "/" else "GET /kiosks/<id>"
            table.append(
                (
                    f"{label} under load",
                    f"{statistics.median(ms):.0f} ms",
                    f"median of {len(ms)}, max {max(ms):.0f} ms",
                )
            )
        wk = observer.caught_up(kill_at, broker_at)
        bk = observer.caught_up(broker_at, end_at)
        table += [
            (
                "worker SIGKILL: ingest paused",
                f"{observer.longest_gap(kill_at, broker_at)[0]:.1f} s",
                "longest time without a new row (restarted at once)",
            ),
            (
                "broker restart: ingest paused",
                f"{observer.longest_gap(broker_at, end_at)[0]:.1f} s",
                "SIGTERM, persistence written, started again",
            ),
            (
                "worker SIGKILL: caught up",
                f"not in {broker_at - kill_at:.0f} s" if wk is None else f"{wk:.0f} s",
                f"lag < {CAUGHT_UP_S:.0f} s again, from the kill",
            ),
            (
                "broker restart: caught up",
                f"not in {end_at - broker_at:.0f} s" if bk is None else f"{bk:.0f} s",
                f"lag < {CAUGHT_UP_S:.0f} s again, from the stop",
            ),
            ("drain after load end", f"{drain_s:.1f} s", ""),
            (
                "acknowledged by broker",
                f"{want}",
                f"telemetry {len(acked['telemetry'])}, events {len(acked['event'])}, "
                f"records {len(acked['record'])}; not acked: {sent['unacked']}",
            ),
            (
                "lost (by id)",
                f"{len(lost_t) + len(lost_e) + len(lost_r)}",
                f"telemetry {len(lost_t)}, events {len(lost_e)}, records {len(lost_r)}",
            ),
            (
                "stored twice",
                f"{dup_t}",
                f"telemetry rows (no dedup); records delivered again: {redelivered}",
            ),
        ]
        width = max(len(r[0]) for r in table)
        print(f"\nfleet at scale: {args.kiosks} kiosks, {args.workers} worker(s)")
        for name, value, note in table:
            print(f"  {name:<{width}}  {value:>16}  {note}")
        print("\ntelemetry rows stored / worst lag, per 5 s:")
        print(f"  after the worker SIGKILL: {observer.timeline(kill_at, broker_at)}")
        print(f"  after the broker restart: {observer.timeline(broker_at, end_at + 30)}")
        if lost_t or lost_e or lost_r or args.keep_logs:
            keep = Path(tempfile.mkdtemp(prefix="bench-scale-logs-"))
            for log in [*root.glob("worker-*.log"), broker.log_path]:
                shutil.copy(log, keep / log.name)
            print(f"  the workers' and the broker's logs are in {keep}")
        if lost_t or lost_e or lost_r:
            return 1
        return 0


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/login", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_scale", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    parser.add_argument("--workers", type=int, default=1, help="console processes (default 1)")
    parser.add_argument("--kiosks", type=int, default=20000)
    parser.add_argument("--keep-logs", action="store_true", help="keep the logs in /tmp")
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
