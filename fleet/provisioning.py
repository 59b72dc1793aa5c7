"""The provisioning service: online enrolment exactly as docs/provisioning.md specifies it.

A claim (claim id, secret, kiosk id, optional device serial, expiry) is made at central; the
technician types `<claim_id>.<secret>` into the kiosk, which logs in to the broker's enrolment
listener with it and sends its CSR on provision/v1/<claim>/request. This service (its own MQTT
identity, CN fleet-provisioning) checks the request in the documented order, signs the CSR with
the center CA (`kiosk-ca`'s directory, the same certificate profile as offline enrolment) and
answers on provision/v1/<claim>/response, both directions proven with HMAC-SHA256 of the claim
secret. The claim's broker account is added to Mosquitto's password file when the claim is made
and removed once it is answered or expired.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import logging
import queue
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from fleet.store import FleetStore
from protocol.crypto import DataKey
from protocol.enrolment import RESPONSE_SCHEMA, proof, proof_ok
from protocol.errors import BadInput, KioskError
from protocol.messages import KIOSK_ID_PATTERN
from protocol.mqtt import new_client, tls_context
from provisioning.ca import CaError, CertificateAuthority

logger = logging.getLogger(__name__)

B32 = "abcdefghijklmnopqrstuvwxyz234567"
REQUEST_TOPIC = "provision/v1/+/request"
MAX_REQUEST = 64 * 1024


def _iso(at: float | None = None) -> str:
    return dt.datetime.fromtimestamp(time.time() if at is None else at, dt.UTC).isoformat(
        timespec="seconds"
    )


# --- the broker's claim accounts ------------------------------------------------------------


class BrokerAccounts:
    """Mosquitto's password file for the enrolment listener, and telling the broker to re-read
    it (`mosquitto_passwd`, then the reload command, e.g. `systemctl reload mosquitto`)."""

    def __init__(self, password_file: Path, reload_command: list[str] | None) -> None:
        self.password_file = password_file
        self.reload_command = reload_command
        self._lock = threading.Lock()

    def add(self, claim_id: str, secret: str) -> None:
        with self._lock:
            create = [] if self.password_file.exists() else ["-c"]
            self._run(
                ["mosquitto_passwd", *create, "-b", str(self.password_file), claim_id, secret]
            )
            self._reload()

    def remove(self, claim_id: str) -> None:
        with self._lock:
            if self.password_file.exists():
                self._run(["mosquitto_passwd", "-D", str(self.password_file), claim_id])
            self._reload()

    def _reload(self) -> None:
        if self.reload_command:
            self._run(self.reload_command)

    @staticmethod
    def _run(command: list[str]) -> None:
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as err:
            raise KioskError(f"{command[0]} failed: {err}") from err


# --- claims ---------------------------------------------------------------------------------


def create_claim(
    store: FleetStore,
    sealer: DataKey,
    kiosk_id: str,
    *,
    site: str = "",
    serial: str = "",
    created_by: str,
    ttl_s: float,
    accounts: BrokerAccounts | None = None,
) -> str:
    """A claim for one kiosk; returns the token `<claim_id>.<secret>`, shown once."""
    if not KIOSK_ID_PATTERN.match(kiosk_id):
        raise BadInput(f"kiosk id must match {KIOSK_ID_PATTERN.pattern}")
    claim_id = "c" + "".join(secrets.choice(B32) for _ in range(12))
    secret = "".join(secrets.choice(B32) for _ in range(32))  # 160 bits
    now = time.time()
    store.add_claim(
        {
            "claim_id": claim_id,
            "secret": base64.b64encode(
                sealer.encrypt(secret.encode(), aad=claim_id.encode())
            ).decode(),
            "kiosk_id": kiosk_id,
            "site": site,
            "serial": serial,
            "created_by": created_by,
            "created_at": now,
            "expires_at": now + ttl_s,
            "account_removed": False,
        }
    )
    if accounts is not None:
        accounts.add(claim_id, secret)
    logger.info("claim created", extra={"kiosk": kiosk_id, "claim": claim_id, "by": created_by})
    return f"{claim_id}.{secret}"


# --- the service ----------------------------------------------------------------------------


class Enrolment:
    """One request in, one answer out (provision-response/1), checks in the documented order."""

    def __init__(
        self,
        store: FleetStore,
        ca: CertificateAuthority,
        sealer: DataKey,
        *,
        cert_days: int,
        broker: dict[str, Any],
        operators: Callable[[], list[dict[str, str]]],
        ca_lock: threading.Lock | None = None,
    ) -> None:
        from protocol.schemas import validator

        self.store = store
        self.ca = ca
        self.sealer = sealer
        self.cert_days = cert_days
        self.broker = broker
        self.operators = operators
        self.ca_lock = ca_lock or threading.Lock()
        self._schema = validator("provision-request")

    def _secret(self, claim: dict[str, Any]) -> str:
        sealed = base64.b64decode(claim["secret"])
        return self.sealer.decrypt(sealed, aad=claim["claim_id"].encode()).decode()

    def answer(self, claim_id: str, payload: bytes) -> tuple[dict[str, Any], bool]:
        """(the response, whether it issued a certificate)."""
        base: dict[str, Any] = {
            "schema": RESPONSE_SCHEMA,
            "claim_id": claim_id,
            "request_id": None,
        }
        claim = self.store.claim(claim_id)
        secret = self._secret(claim) if claim else None

        def error(code: str, message: str) -> tuple[dict[str, Any], bool]:
            logger.warning("enrolment refused", extra={"claim": claim_id, "reason": code})
            out = {
                **base,
                "status": "error",
                "error": {"code": code, "message": message},
                "time": _iso(),
            }
            if secret is not None and code != "claim_unknown":
                out["proof"] = proof(out, secret)
            return out, False

        try:
            request = json.loads(payload.decode("utf-8")) if len(payload) <= MAX_REQUEST else None
        except (UnicodeDecodeError, ValueError):
            request = None
        if isinstance(request, dict) and isinstance(request.get("request_id"), str):
            base["request_id"] = request["request_id"][:128]
        # 1 malformed, 2 unknown, 3 proof, 4 expired, 5 used, 6 serial, 7 kiosk id, 8 CSR
        if (
            not isinstance(request, dict)
            or any(True for _ in self._schema.iter_errors(request))
            or request.get("claim_id") != claim_id
        ):
            return error("malformed", "not a valid provision-request/1 for this claim")
        if claim is None or secret is None:
            return error("claim_unknown", "no such claim")
        if not proof_ok(request, secret):
            return error("bad_proof", "the proof does not verify")
        now = time.time()
        if now >= claim["expires_at"]:
            return error("claim_expired", "the claim has expired")
        csr = _load_csr(request["csr"])
        key_id = _key_id(csr) if csr is not None else None
        if claim["used_by"] is not None and claim["used_by"] != key_id:
            return error("claim_used", "the claim was used by another device key")
        if claim["serial"] and request.get("serial") != claim["serial"]:
            return error("serial_mismatch", "this claim is for another device")
        if request["kiosk_id"] != claim["kiosk_id"]:
            return error("kiosk_id_mismatch", f"this claim is for {claim['kiosk_id']}")
        if csr is None or key_id is None or not csr.is_signature_valid:
            return error("bad_csr", "the CSR does not parse or its signature does not verify")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if [n.value for n in names] != [claim["kiosk_id"]]:
            return error("bad_csr", "the CSR's CN is not the kiosk id")
        try:
            certificate = self._certificate(claim, request["csr"], key_id, now)
        except CaError as err:
            return error("bad_csr", str(err))
        except _ClaimTaken:
            return error("claim_used", "the claim was used by another device key")
        except Exception:
            logger.exception("enrolment failed at central")
            return error("internal", "central could not issue the certificate")
        ok = {
            **base,
            "status": "ok",
            "kiosk_id": claim["kiosk_id"],
            "certificate": certificate,
            "ca_chain": [self.ca.certificate_pem],
            "broker": self.broker,
            "operators": self.operators(),
            "time": _iso(),
        }
        ok["proof"] = proof(ok, secret)
        return ok, True

    def _certificate(self, claim: dict[str, Any], csr_pem: str, key_id: str, now: float) -> str:
        """The claim's certificate: issued once; a repeat with the same key gets it again."""
        if not self.store.bind_claim(claim["claim_id"], key_id, now=now):
            raise _ClaimTaken
        again = self.store.claim(claim["claim_id"])
        if again and again["certificate"]:
            return again["certificate"]
        with self.ca_lock:
            pem = self.ca.sign_csr(csr_pem, kiosk_id=claim["kiosk_id"], days=self.cert_days)
        cert = x509.load_pem_x509_certificate(pem.encode())
        serial = format(cert.serial_number, "x")
        self.store.claim_certificate(claim["claim_id"], pem, serial)
        self.store.certificate_issued(
            serial=serial,
            kiosk_id=claim["kiosk_id"],
            site=claim["site"],
            not_after=cert.not_valid_after_utc.timestamp(),
            now=now,
        )
        logger.info("kiosk enrolled", extra={"kiosk": claim["kiosk_id"], "serial": serial})
        return pem


class _ClaimTaken(Exception):
    pass


def _load_csr(pem: Any) -> x509.CertificateSigningRequest | None:
    try:
        return x509.load_pem_x509_csr(pem.encode()) if isinstance(pem, str) else None
    except ValueError:
        return None


def _key_id(csr: x509.CertificateSigningRequest) -> str | None:
    try:
        der = csr.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, TypeError):
        return None
    return hashlib.sha256(der).hexdigest()


class ProvisioningService:
    """The MQTT side: its own connection (CN fleet-provisioning) on the mutual-TLS listener."""

    def __init__(
        self,
        enrolment: Enrolment,
        *,
        host: str,
        port: int,
        ca_file: Path | None,
        cert_file: Path,
        key_file: Path,
        accounts: BrokerAccounts | None,
        store: FleetStore,
    ) -> None:
        self.enrolment = enrolment
        self.host, self.port = host, port
        self.ca_file, self.cert_file, self.key_file = ca_file, cert_file, key_file
        self.accounts = accounts
        self.store = store
        self.answered = 0
        self.issued = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1000)
        self._wake = False
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        client = new_client(
            "fleet-provisioning", tls=tls_context(self.ca_file, self.cert_file, self.key_file)
        )
        client.reconnect_delay_set(0.1, 30)  # type: ignore[arg-type]  # paho takes float seconds
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *a: self._connected.clear()
        client.on_message = self._on_message
        client.connect_async(self.host, self.port, keepalive=30)
        self._client = client
        self._thread = threading.Thread(target=self._run, name="fleet-provisioning", daemon=True)
        self._thread.start()
        client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    def kick(self) -> None:
        """A kiosk was heard: close the claim accounts that may go now (soon, not here)."""
        self._wake = True
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(())

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            logger.error(
                "broker refused the provisioning service", extra={"reason": str(reason_code)}
            )
            return
        client.subscribe(REQUEST_TOPIC, qos=1)
        self._connected.set()

    def _on_message(self, client, userdata, message) -> None:
        try:
            self._queue.put_nowait((message.topic, bytes(message.payload)))
        except queue.Full:
            logger.warning("enrolment queue full, request dropped (the kiosk repeats it)")

    def _run(self) -> None:
        next_sweep = 0.0
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=5.0)
            except queue.Empty:
                item = ()
            if item is None:
                return
            try:
                if item:
                    self._handle(*item)
                if self._wake or time.monotonic() >= next_sweep:
                    self._wake = False
                    next_sweep = time.monotonic() + 60.0
                    self._close_accounts()
            except Exception:  # the database away, a bug: log, keep serving
                logger.exception("provisioning service step failed")

    def _handle(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) != 4:
            return
        claim_id = parts[2]
        try:
            answer, issued = self.enrolment.answer(claim_id, payload)
        except Exception:
            logger.exception("enrolment answer failed")
            return
        client = self._client
        if client is None:
            return
        info = client.publish(
            f"provision/v1/{claim_id}/response",
            json.dumps(answer, ensure_ascii=False, separators=(",", ":")),
            qos=1,
        )
        self.answered += 1
        if issued:
            self.issued += 1
            # The account stays until the kiosk is heard with its new certificate: a kiosk
            # that lost this answer can ask again (docs/provisioning.md, 6).
            with contextlib.suppress(RuntimeError, ValueError):  # broker gone: it asks again
                info.wait_for_publish(10)

    def _close_accounts(self) -> None:
        if self.accounts is None:
            return
        for claim_id in self.store.claims_to_close(now=time.time()):
            try:
                self.accounts.remove(claim_id)
            except KioskError:
                logger.exception("could not remove a claim's broker account")
                return
            self.store.claim_account_removed(claim_id)
