"""Signed fleet commands: what runs, what is refused and why, fuzzing, and one trip through
a real Mosquitto with an MQTT 5 response topic and correlation data."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.fleet import (
    BadArgs,
    Command,
    CommandProcessor,
    FleetClient,
    OperatorKeys,
    SeenCommands,
    Topics,
    canonical_bytes,
    sign_command,
)
from edge.fleet.commands import write_public_key
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from tests.mqtt_broker import (
    FleetPki,
    assert_valid,
    central_peer,
    running_broker,
    wait_until,
)

KIOSK = "HN-TAYHO-01"
OPERATOR = "nguyen.van.an"
TOPICS = Topics("kiosk/v1", KIOSK)


@pytest.fixture(scope="module")
def operator_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def trust_dir(tmp_path_factory: pytest.TempPathFactory, operator_key) -> Path:
    directory = tmp_path_factory.mktemp("operators")
    write_public_key(operator_key, directory, OPERATOR)
    return directory


class Handlers:
    """The daemon's side: a few handlers, and what they were called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def mapping(self) -> dict[str, Any]:
        return {
            "print-test": self.print_test,
            "lock": Command(
                self.lock,
                args_schema={
                    "type": "object",
                    "properties": {"reason": {"type": "string", "maxLength": 200}},
                    "required": ["reason"],
                    "additionalProperties": False,
                },
            ),
            "set-config": self.set_config,
            "collect-logs": self.boom,
        }

    def print_test(self, args: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("print-test", args))
        return {"job": "test-1"}

    def lock(self, args: dict[str, Any]) -> None:
        self.calls.append(("lock", args))

    def set_config(self, args: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(args.get("telemetry_interval_s"), int):
            raise BadArgs("telemetry_interval_s must be an integer")
        self.calls.append(("set-config", args))
        return {"applied": True}

    def boom(self, args: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("disk on fire")


class Setup:
    def __init__(self, root: Path, trust_dir: Path, **kw: Any) -> None:
        kw.setdefault("refusal_events_per_minute", 10**9)
        self.store = Store(root / "kiosk.db")
        self.store.open()
        self.handlers = Handlers()
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.now = time.time()
        self.processor = CommandProcessor(
            kiosk_id=KIOSK,
            topics=TOPICS,
            commands=self.handlers.mapping(),
            keys=OperatorKeys(trust_dir),
            seen=SeenCommands(self.store),
            report=lambda kind, severity, detail: self.events.append((kind, severity, detail)),
            clock=lambda: self.now,
            **kw,
        )

    def run(self, name: str, envelope: Any, **kw: Any):
        payload = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
        outcome = self.processor.process(name, payload, **kw)
        assert_valid(outcome.result, "command-result")
        return outcome


@pytest.fixture
def setup(tmp_path: Path, trust_dir: Path) -> Iterator[Setup]:
    s = Setup(tmp_path, trust_dir)
    yield s
    s.store.close()


def signed(key, name: str = "print-test", args: dict[str, Any] | None = None, **kw: Any):
    kw.setdefault("target", KIOSK)
    return sign_command(key, OPERATOR, name, args or {}, kw.pop("ttl_s", 300), **kw)


# --- what runs ------------------------------------------------------------------------------


def test_a_valid_command_runs_its_handler_and_answers(setup: Setup, operator_key) -> None:
    envelope = signed(operator_key, "print-test", {"copies": 1})
    assert_valid(envelope, "command")
    outcome = setup.run("print-test", envelope)
    assert outcome.status == "ok" and outcome.reason is None
    assert outcome.result["id"] == envelope["id"]
    assert outcome.result["result"] == {"job": "test-1"}
    assert outcome.topic == f"kiosk/v1/{KIOSK}/cmd/print-test/result"
    assert setup.handlers.calls == [("print-test", {"copies": 1})]
    assert setup.events == []


def test_the_signature_covers_the_canonical_json_documented(operator_key) -> None:
    envelope = signed(operator_key, "lock", {"reason": "Bảo trì máy in"})
    unsigned = {k: v for k, v in envelope.items() if k != "signature"}
    expected = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_bytes(envelope) == expected.encode("utf-8")
    assert "Bảo trì".encode() in canonical_bytes(envelope)  # UTF-8, not \\u escapes
    operator_key.public_key().verify(
        base64.b64decode(envelope["signature"]), expected.encode(), ec.ECDSA(hashes.SHA256())
    )


def test_a_raw_r_s_signature_is_accepted_too(setup: Setup, operator_key) -> None:
    envelope = signed(operator_key)
    r, s = decode_dss_signature(base64.b64decode(envelope["signature"]))
    envelope["signature"] = base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
    assert setup.run("print-test", envelope).status == "ok"


def test_args_are_checked_by_schema_or_by_the_handler(setup: Setup, operator_key) -> None:
    ok = setup.run("lock", signed(operator_key, "lock", {"reason": "maintenance"}))
    assert ok.status == "ok" and ok.result["result"] == {}  # a handler may return None
    bad_schema = setup.run("lock", signed(operator_key, "lock", {"reason": 5}))
    bad_handler = setup.run(
        "set-config", signed(operator_key, "set-config", {"telemetry_interval_s": "soon"})
    )
    assert (bad_schema.status, bad_schema.reason) == ("refused", "bad_args")
    assert (bad_handler.status, bad_handler.reason) == ("refused", "bad_args")
    assert "integer" in bad_handler.result["message"]
    assert [e[2]["reason"] for e in setup.events] == ["bad_args", "bad_args"]


def test_a_handler_that_raises_gives_an_error_result_and_nothing_breaks(
    setup: Setup, operator_key
) -> None:
    failed = setup.run("collect-logs", signed(operator_key, "collect-logs"))
    assert (failed.status, failed.reason) == ("error", "handler_failed")
    assert "RuntimeError: disk on fire" in failed.result["message"]
    assert setup.events[-1][0] == "fleet.command_failed"
    assert setup.run("print-test", signed(operator_key)).status == "ok"


# --- what is refused --------------------------------------------------------------------------


def refusal_cases(key, other_key) -> dict[str, tuple[str, Any, str]]:
    """name -> (topic name, payload, expected reason)."""
    good = signed(key)
    unsigned = {k: v for k, v in good.items() if k != "signature"}
    tampered = {**good, "args": {"copies": 99}}
    stranger = sign_command(other_key, "mallory", "print-test", {}, 300, target=KIOSK)
    forged_name = sign_command(other_key, OPERATOR, "print-test", {}, 300, target=KIOSK)
    return {
        "unsigned": ("print-test", unsigned, "unsigned"),
        "bad signature (args changed)": ("print-test", tampered, "bad_signature"),
        "bad signature (other key)": ("print-test", forged_name, "bad_signature"),
        "signature not base64": ("print-test", {**good, "signature": "!!"}, "bad_signature"),
        "unknown operator": ("print-test", stranger, "unknown_operator"),
        "expired": ("print-test", signed(key, issued_at=time.time() - 3600), "expired"),
        "not yet valid": ("print-test", signed(key, issued_at=time.time() + 3600), "not_yet_valid"),
        "ttl too long": ("print-test", signed(key, ttl_s=30 * 86400), "ttl_too_long"),
        "other kiosk": ("print-test", signed(key, target="HN-OTHER-02"), "wrong_target"),
        "unknown command": ("self-destruct", signed(key, "self-destruct"), "unknown_command"),
        "sent to another name": ("lock", signed(key, "print-test"), "malformed"),
        "not JSON": ("print-test", b"{not json", "malformed"),
        "not UTF-8": ("print-test", b"\xff\xfe\x00", "malformed"),
        "not an object": ("print-test", [good], "malformed"),
        "missing field": (
            "print-test",
            {k: v for k, v in good.items() if k != "expires_at"},
            "malformed",
        ),
        "extra field": ("print-test", {**good, "sudo": True}, "malformed"),
        "args not an object": ("print-test", {**good, "args": [1, 2]}, "malformed"),
        "wrong schema": ("print-test", {**good, "schema": "command/9"}, "malformed"),
        "time without zone": (
            "print-test",
            {**good, "issued_at": "2026-01-01T00:00:00"},
            "malformed",
        ),
        "NaN": (
            "print-test",
            json.dumps(good).replace('"args": {}', '"args": NaN').encode(),
            "malformed",
        ),
        "duplicate key": (
            "print-test",
            json.dumps(good)[:-1].encode() + b', "name": "lock"}',
            "malformed",
        ),
        "too big": ("print-test", b" " * 70_000 + json.dumps(good).encode(), "malformed"),
    }


def test_every_kind_of_bad_command_is_refused_with_a_reason_and_an_event(
    setup: Setup, operator_key
) -> None:
    cases = refusal_cases(operator_key, ec.generate_private_key(ec.SECP256R1()))
    for label, (name, payload, reason) in cases.items():
        before = len(setup.events)
        outcome = setup.run(name, payload)
        assert (outcome.status, outcome.reason) == ("refused", reason), label
        assert outcome.result["message"], label
        assert len(setup.events) == before + 1, label
        kind, severity, detail = setup.events[-1]
        assert (kind, severity, detail["reason"]) == ("fleet.command_refused", "warning", reason)
    assert setup.handlers.calls == []


def test_a_replayed_command_is_refused_even_after_a_restart(
    tmp_path: Path, trust_dir: Path, operator_key
) -> None:
    envelope = signed(operator_key)
    first = Setup(tmp_path, trust_dir)
    assert first.run("print-test", envelope).status == "ok"
    assert first.run("print-test", envelope).reason == "replayed"
    first.store.close()
    again = Setup(tmp_path, trust_dir)  # the daemon restarted: same database file
    try:
        outcome = again.run("print-test", envelope)
        assert (outcome.status, outcome.reason) == ("refused", "replayed")
        assert again.events[-1][2]["command_id"] == envelope["id"]
        assert len(first.handlers.calls) + len(again.handlers.calls) == 1
        # Ids are forgotten once their command expired (it could not run anyway).
        again.now += 3600
        again.run("print-test", signed(operator_key, issued_at=again.now))
        assert again.processor.seen.count() == 1
    finally:
        again.store.close()


def test_operator_keys_are_reread_and_only_p256_is_trusted(tmp_path: Path, operator_key) -> None:
    directory = tmp_path / "trust"
    keys = OperatorKeys(directory)
    assert keys.get(OPERATOR) is None
    write_public_key(operator_key, directory, OPERATOR)
    assert keys.get(OPERATOR) is not None  # added while running: no restart needed
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (directory / "rsa.op.pem").write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    p384 = ec.generate_private_key(ec.SECP384R1())
    write_public_key(p384, directory, "p384.op")
    (directory / "junk.pem").write_text("not a key")
    assert keys.operators() == [OPERATOR]
    assert keys.get("../trust/" + OPERATOR) is None
    (directory / f"{OPERATOR}.pem").unlink()
    assert keys.get(OPERATOR) is None  # removed: revoked at once


def test_result_goes_to_the_response_topic_only_inside_the_kiosks_tree(
    setup: Setup, operator_key
) -> None:
    inside = f"kiosk/v1/{KIOSK}/cmd/console-7/result"
    ok = setup.run("print-test", signed(operator_key), response_topic=inside, correlation=b"c1")
    assert ok.topic == inside and ok.correlation == b"c1"
    outside = setup.run("print-test", signed(operator_key), response_topic="kiosk/v1/OTHER/state")
    assert outside.topic == f"kiosk/v1/{KIOSK}/cmd/print-test/result"
    reply_to = setup.run("print-test", signed(operator_key, reply_to=inside))  # MQTT 3.1.1 way
    assert reply_to.topic == inside


def test_refusal_events_are_rate_limited(tmp_path: Path, trust_dir: Path) -> None:
    s = Setup(tmp_path, trust_dir, refusal_events_per_minute=3)
    try:
        for _ in range(10):
            assert s.run("print-test", b"garbage").reason == "malformed"
        assert len(s.events) == 3
        s.now += 61
        s.run("print-test", b"garbage")
        assert s.events[-1][2]["suppressed"] == 7
    finally:
        s.store.close()


# --- fuzzing ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_setup(tmp_path_factory: pytest.TempPathFactory, trust_dir: Path) -> Iterator[Setup]:
    s = Setup(tmp_path_factory.mktemp("fuzz"), trust_dir)
    yield s
    s.store.close()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
names = st.sampled_from(["print-test", "lock", "set-config", "collect-logs", "nope"]) | st.text(
    max_size=12
)


def check_outcome(s: Setup, name: str, payload: bytes) -> None:
    events = len(s.events)
    outcome = s.processor.process(name, payload)  # must never raise
    event(f"{outcome.status}: {outcome.reason}")  # --hypothesis-show-statistics shows the mix
    assert_valid(outcome.result, "command-result")
    assert outcome.result["name"] == name
    if outcome.status == "refused":
        assert len(s.events) == events + 1
    if outcome.status == "ok":
        assert name in s.handlers.mapping()


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=names, payload=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
)
def test_fuzz_arbitrary_bytes_and_json_never_crash(
    fuzz_setup: Setup, name: str, payload: bytes
) -> None:
    check_outcome(fuzz_setup, name, payload)


FIELDS = [
    "schema",
    "id",
    "name",
    "args",
    "issued_at",
    "expires_at",
    "operator",
    "signature",
    "target",
    "reply_to",
    "extra",
]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["print-test", "lock", "set-config", "collect-logs", "nope"]),
    edits=st.just([]) | st.lists(st.tuples(st.sampled_from(FIELDS), json_values), max_size=2),
    drop=st.just([]) | st.lists(st.sampled_from(FIELDS), max_size=2),
    resign=st.booleans(),
    args=st.fixed_dictionaries(
        {}, optional={"reason": json_values, "telemetry_interval_s": json_values}
    )
    | st.dictionaries(st.text(max_size=10), json_values, max_size=4)
    | json_values,
)
def test_fuzz_mutated_signed_envelopes_never_crash(
    fuzz_setup: Setup, operator_key, name: str, edits, drop, resign: bool, args: Any
) -> None:
    envelope = signed(operator_key, name, command_id=str(uuid.uuid4()))
    envelope["args"] = args
    for key, value in edits:
        envelope[key] = value
    for key in drop:
        envelope.pop(key, None)
    if resign and all(k in envelope for k in ("schema", "id")):
        try:
            body = canonical_bytes(envelope)
        except (TypeError, ValueError):
            body = None
        if body is not None:
            signature = operator_key.sign(body, ec.ECDSA(hashes.SHA256()))
            envelope["signature"] = base64.b64encode(signature).decode()
    check_outcome(fuzz_setup, name, json.dumps(envelope).encode())


# --- end to end through the broker -------------------------------------------------------------


def test_commands_end_to_end_through_mosquitto(
    tmp_path: Path, trust_dir: Path, operator_key
) -> None:
    pki = FleetPki(tmp_path / "pki")
    with running_broker(tmp_path / "broker", pki) as broker:
        store = Store(tmp_path / "kiosk" / "kiosk.db")
        store.open()
        outbox = Outbox(store, DataKey.load_or_create(tmp_path / "kiosk" / "keys" / "data.key"))
        handlers = Handlers()
        identity = pki.client(KIOSK)
        client = FleetClient(
            kiosk_id=KIOSK,
            store=store,
            outbox=outbox,
            port=broker.port,
            ca_file=pki.ca_file,
            cert_file=identity.cert,
            key_file=identity.key,
            trust_dir=trust_dir,
            commands=handlers.mapping(),
            telemetry_interval_s=3600,
            reconnect_min_s=0.05,
            reconnect_max_s=0.5,
        )
        client.start()
        try:
            with central_peer(broker, pki) as central:
                wait_until(lambda: client.connected)
                central.wait_for(f"kiosk/v1/{KIOSK}/state")
                base = f"kiosk/v1/{KIOSK}/cmd"
                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic = f"{base}/print-test/result"
                props.CorrelationData = b"req-42"
                envelope = signed(operator_key, "print-test", {"copies": 1})
                central.publish(f"{base}/print-test", json.dumps(envelope), properties=props)
                reply = central.wait_for(f"{base}/print-test/result")
                assert reply.properties.CorrelationData == b"req-42"
                result = reply.json()
                assert_valid(result, "command-result")
                assert (result["status"], result["id"]) == ("ok", envelope["id"])
                assert handlers.calls == [("print-test", {"copies": 1})]

                central.publish(f"{base}/print-test", json.dumps(envelope))  # the same again
                replay = central.wait_for(
                    f"{base}/print-test/result", lambda m: m.json()["status"] == "refused"
                ).json()
                assert replay["reason"] == "replayed"
                event = central.wait_for(
                    f"kiosk/v1/{KIOSK}/events",
                    lambda m: m.json()["kind"] == "fleet.command_refused",
                ).json()
                assert_valid(event, "event")
                assert event["detail"]["reason"] == "replayed"
                assert event["detail"]["command_id"] == envelope["id"]
                assert handlers.calls == [("print-test", {"copies": 1})]
        finally:
            client.stop()
            store.close()
