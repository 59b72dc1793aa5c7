"""Provisioning test parts: a fleet CA made by `kiosk-ca`, and a provisioning service stub
that is a real MQTT peer on the broker and follows docs/provisioning.md to the letter."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from protocol.enrolment import proof, proof_ok
from provisioning.ca import CaError, CertificateAuthority
from provisioning.ca import main as kiosk_ca
from tests.mqtt_broker import Broker, FleetPki, Peer, schema_validator

PROVISIONING_CN = "fleet-provisioning"
B32 = "abcdefghijklmnopqrstuvwxyz234567"


def center_ca(root: Path) -> tuple[CertificateAuthority, FleetPki]:
    """`kiosk-ca init`, and a FleetPki (broker and peers' certificates) on that very CA."""
    assert kiosk_ca(["--ca-dir", str(root / "ca"), "init", "--name", "Test city fleet CA"]) == 0
    ca = CertificateAuthority(root / "ca")
    key = serialization.load_pem_private_key(ca.key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    return ca, FleetPki(root / "pki", ca=(key, cert))


def new_claim(kiosk_id: str, serial: str = "", *, days: int = 7) -> Claim:
    return Claim(
        claim_id="c" + "".join(secrets.choice(B32) for _ in range(12)),
        secret="".join(secrets.choice(B32) for _ in range(32)),
        kiosk_id=kiosk_id,
        serial=serial,
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=days),
    )


@dataclass
class Claim:
    claim_id: str
    secret: str
    kiosk_id: str
    serial: str
    expires_at: dt.datetime
    used_by: bytes | None = None  # the public key it was used for
    certificate: str | None = None

    @property
    def token(self) -> str:
        return f"{self.claim_id}.{self.secret}"


def add_claim_account(broker: Broker, claim: Claim) -> None:
    """What central does per claim: a password file line (before start, or then SIGHUP)."""
    subprocess.run(
        ["mosquitto_passwd", "-b", str(broker.passwd), claim.claim_id, claim.secret],
        check=True,
        capture_output=True,
    )


@dataclass
class ProvisioningStub:
    """Central's provisioning service, reduced to the contract: checks in the documented
    order, signs with the CA, answers with the certificate, chain, broker and operators."""

    broker: Broker
    pki: FleetPki
    ca: CertificateAuthority
    broker_settings: dict[str, Any]
    operators: list[dict[str, str]] = field(default_factory=list)
    claims: dict[str, Claim] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> ProvisioningStub:
        self.peer = Peer(self.broker, self.pki.client(PROVISIONING_CN))
        self.peer.client.on_message = self._on_message
        self.peer.connect()
        self.peer.subscribe("provision/v1/+/request")
        return self

    def close(self) -> None:
        self.peer.close()

    def _on_message(self, client, userdata, message) -> None:
        claim_id = message.topic.split("/")[2]
        answer = self.answer(claim_id, bytes(message.payload))
        self.responses.append(answer)
        client.publish(f"provision/v1/{claim_id}/response", json.dumps(answer), qos=1)

    def answer(self, claim_id: str, payload: bytes) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        base: dict[str, Any] = {
            "schema": "provision-response/1",
            "claim_id": claim_id,
            "request_id": None,
            "time": now.isoformat(timespec="seconds"),
        }
        claim = self.claims.get(claim_id)

        def error(code: str, message: str) -> dict[str, Any]:
            out = {**base, "status": "error", "error": {"code": code, "message": message}}
            if claim is not None and code != "claim_unknown":
                out["proof"] = proof(out, claim.secret)
            return out

        try:
            request = json.loads(payload) if len(payload) <= 65536 else None
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return error("malformed", "not a JSON object")
        self.requests.append(request)
        if isinstance(request.get("request_id"), str):
            base["request_id"] = request["request_id"]
        if list(schema_validator("provision-request").iter_errors(request)) or (
            request["claim_id"] != claim_id
        ):
            return error("malformed", "not a valid provision-request/1")
        if claim is None:
            return error("claim_unknown", "no such claim")
        if not proof_ok(request, claim.secret):
            return error("bad_proof", "the proof does not verify")
        if now >= claim.expires_at:
            return error("claim_expired", "the claim has expired")
        try:
            csr = x509.load_pem_x509_csr(request["csr"].encode())
        except ValueError:
            csr = None
        public = (
            csr.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            if csr is not None
            else None
        )
        if claim.used_by is not None and claim.used_by != public:
            return error("claim_used", "the claim was used by another device key")
        if claim.serial and request["serial"] != claim.serial:
            return error("serial_mismatch", "this claim is for another device")
        if request["kiosk_id"] != claim.kiosk_id:
            return error("kiosk_id_mismatch", f"this claim is for {claim.kiosk_id}")
        if csr is None or not csr.is_signature_valid:
            return error("bad_csr", "the CSR does not parse or verify")
        cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not cn or cn[0].value != claim.kiosk_id:
            return error("bad_csr", "the CSR's CN is not the kiosk id")
        if claim.certificate is None:
            try:
                claim.certificate = self.ca.sign_csr(request["csr"], kiosk_id=claim.kiosk_id)
            except CaError as err:
                return error("bad_csr", str(err))
            claim.used_by = public
        ok = {
            **base,
            "status": "ok",
            "kiosk_id": claim.kiosk_id,
            "certificate": claim.certificate,
            "ca_chain": [self.ca.certificate_pem],
            "broker": self.broker_settings,
            "operators": self.operators,
        }
        ok["proof"] = proof(ok, claim.secret)
        return ok


def operator_key(directory: Path, operator: str) -> ec.EllipticCurvePrivateKey:
    """An operator's command-signing key; its public half as <directory>/<operator>.pem."""
    key = ec.generate_private_key(ec.SECP256R1())
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{operator}.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
