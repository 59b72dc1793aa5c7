"""Enrolment: the device key and the CSR, and the certificate signed offline or online."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography import x509

from edge import config as cfg
from edge.errors import BadInput, KioskError
from edge.fleet.certificates import (
    CertificateRefused,
    _atomic_write,
    install_certificate,
    start_rotation,
)
from provisioning.hwtest import Technician
from provisioning.provision.files import Paths
from provisioning.provision.keys import _sha256, device_serial
from provisioning.provision.state import Options, ProvisionState


class Waiting(KioskError):
    """Provisioning paused on purpose: the offline CSR must be signed at the center."""

    code = "waiting"
    exit_code = 0


class Enrolment:
    """Steps 2 and 3 of the Provisioner: the device key made here, then its certificate from the
    center, offline (a CSR carried there, the signed file carried back) or online (a claim)."""

    config: cfg.Config
    options: Options
    paths: Paths
    state: ProvisionState
    ui: Technician

    # --- 2. device key ----------------------------------------------------------------

    def step_device_key(self) -> None:
        kiosk_id = self.config.kiosk.id
        csr_pem = start_rotation(self.paths.state_dir, kiosk_id)  # key made here, 0600
        csr_path = self.paths.work / f"{kiosk_id}.csr"
        _atomic_write(csr_path, csr_pem.encode(), 0o644)
        digest = hashlib.sha256(csr_pem.encode()).hexdigest()
        self.state.finish("device_key", csr=str(csr_path), csr_sha256=digest)
        self.ui.say("✓ Khóa thiết bị đã tạo trên máy (không bao giờ xuất ra) / device key made")

    # --- 3. enrolment ---------------------------------------------------------------

    def step_enrolment(self) -> None:
        o = self.options
        mode = o.enrol or self.state.step("enrolment").get("mode")
        if mode is None:
            mode = "online" if o.claim else "offline"
            if self.ui.interactive and not o.cert_in:
                mode = self.ui.ask("Đăng ký: online (mã nhận) hay offline (tệp) / enrol", mode)
        if mode not in ("offline", "online"):
            raise BadInput("--enrol must be 'offline' or 'online'")
        self.state.step("enrolment")["mode"] = mode
        ca_file = o.ca_file or (self.paths.ca_file if self.paths.ca_file.exists() else None)
        if ca_file is None and self.ui.interactive:
            ca_file = Path(self.ui.ask("Tệp chứng thư CA của trung tâm / fleet CA file"))
        if ca_file is None or not ca_file.exists():
            raise BadInput(
                "Cần chứng thư CA của trung tâm / the fleet CA certificate is needed (--ca-file)"
            )
        ca_pem = ca_file.read_bytes()
        try:
            x509.load_pem_x509_certificate(ca_pem)
        except ValueError as err:
            raise BadInput(f"{ca_file} is not a PEM certificate: {err}") from err
        if ca_file.resolve() != self.paths.ca_file.resolve():
            _atomic_write(self.paths.ca_file, ca_pem, 0o644)  # public; kept for the resume
        csr_pem = Path(self.state.step("device_key")["csr"]).read_text()
        if mode == "offline":
            certificate = self._offline(csr_pem)
            extra: dict[str, Any] = {}
        else:
            certificate, extra = self._online(csr_pem, ca_file)
        try:
            result = install_certificate(
                certificate,
                state_dir=self.paths.state_dir,
                kiosk_id=self.config.kiosk.id,
                ca_file=self.paths.ca_file,
                cert_file=self.paths.cert_file,
                key_file=self.paths.key_file,
            )
        except CertificateRefused as err:
            raise BadInput(f"Chứng thư không dùng được / certificate refused: {err}") from err
        self.state.finish(
            "enrolment", mode=mode, waiting_for=None, serial=result["serial"], **extra
        )
        self.ui.say(f"✓ Chứng thư đã cài / certificate installed (serial {result['serial']})")

    def _offline(self, csr_pem: str) -> str:
        o = self.options
        cert_in = o.cert_in
        if (
            cert_in is None
            and self.ui.interactive
            and self.state.step("enrolment").get("waiting_for")
        ):
            answer = self.ui.ask("Tệp chứng thư đã ký (để trống nếu chưa có) / signed cert", "")
            cert_in = Path(answer) if answer else None
        if cert_in is None:
            out = o.csr_out or self.paths.work / f"{self.config.kiosk.id}.csr"
            if out != Path(self.state.step("device_key")["csr"]):
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(csr_pem)
            step = self.state.step("enrolment")
            step["waiting_for"] = "certificate"
            step["csr_out"] = str(out)
            self.state.save()
            raise Waiting(
                f"Yêu cầu chứng thư (CSR) đã ghi vào {out}. Mang tới trung tâm ký "
                f"('kiosk-ca sign {out.name}'), rồi chạy 'kiosk provision --cert-in <tệp .crt>'. / "
                f"CSR written to {out}: have it signed at the center, then run "
                "'kiosk provision --cert-in FILE'."
            )
        if not cert_in.exists():
            raise BadInput(f"{cert_in} does not exist")
        return cert_in.read_text()

    def _online(self, csr_pem: str, ca_file: Path) -> tuple[str, dict[str, Any]]:
        from provisioning import online

        o = self.options
        # The prompt, the answers file or $KIOSK_CLAIM_TOKEN keep the token out of `ps`.
        claim = o.claim or os.environ.get("KIOSK_CLAIM_TOKEN")
        if claim is None and self.ui.interactive:
            claim = self.ui.ask("Mã nhận thiết bị / claim token")
        if not claim:
            raise BadInput("Thiếu mã nhận thiết bị / the claim token is missing (--claim)")
        token = online.ClaimToken.parse(claim)
        host = o.provision_host or o.broker_host or self.config.mqtt.host
        request = online.build_request(
            token,
            kiosk_id=self.config.kiosk.id,
            serial=device_serial(o.serial),
            csr_pem=csr_pem,
            site=self.config.kiosk.site,
            location=self.config.kiosk.location,
        )
        self.ui.say(f"Đang đăng ký qua {host}:{o.provision_port} / enrolling online …")
        answer = online.enrol(
            token,
            request,
            host=host,
            port=o.provision_port,
            ca_file=ca_file,
            timeout=o.enrol_timeout_s,
        )
        if len(answer["ca_chain"]) != 1:
            raise online.EnrolmentFailed(
                "the answer's ca_chain must be exactly the fleet CA", reason="malformed"
            )
        root = x509.load_pem_x509_certificate(answer["ca_chain"][-1].encode())
        ours = x509.load_pem_x509_certificate(ca_file.read_bytes())
        if root.fingerprint(_sha256()) != ours.fingerprint(_sha256()):
            raise online.EnrolmentFailed(
                "the answer's CA is not the fleet CA this kiosk trusts", reason="ca_mismatch"
            )
        issuer = x509.load_pem_x509_certificate(answer["ca_chain"][0].encode())
        cert = x509.load_pem_x509_certificate(answer["certificate"].encode())
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError) as err:
            raise online.EnrolmentFailed(
                "the certificate does not chain to the answer's CA"
            ) from err
        pending = self.paths.work / "online-answer.json"
        _atomic_write(pending, json.dumps(answer).encode(), 0o600)
        return answer["certificate"], {"answer": str(pending), "claim_id": token.claim_id}
