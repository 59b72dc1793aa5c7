"""`kiosk provision`: the six steps that make a blank kiosk a fleet member. Each step's outcome is
kept in <state_dir>/provisioning/state.json, so running the command again resumes where it
stopped and skips what is done (idempotent); --reprovision starts over with a new device key."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge import config as cfg
from edge.errors import BadInput, ConfigError, KioskError
from edge.fleet.certificates import (
    PENDING_KEY,
    CertificateRefused,
    _atomic_write,
    certificate_info,
    install_certificate,
    start_rotation,
)
from edge.provisioned import STATE_SCHEMA, STEPS
from protocol.files import fsync_dir
from provisioning.hwtest import Technician

logger = logging.getLogger(__name__)

PIN_NAMES = ("back", "next", "ok", "cancel", "help", "tamper", "led")
# Options a resumed run takes from the first one when not given again.
REMEMBERED = (
    "enrol",
    "ca_file",
    "operators_dir",
    "broker_host",
    "broker_port",
    "provision_host",
    "serial",
)


# --- options and state ---------------------------------------------------------------------


@dataclass
class Options:
    """Everything a technician can answer up front (flags or an answers file)."""

    kiosk_id: str | None = None
    site: str | None = None
    location: str | None = None
    paper_width_mm: int | None = None
    pins: dict[str, int] = field(default_factory=dict)
    enrol: str | None = None  # "offline" | "online"
    csr_out: Path | None = None
    cert_in: Path | None = None
    ca_file: Path | None = None
    claim: str | None = None
    provision_host: str | None = None
    provision_port: int = 8884
    serial: str | None = None
    operators_dir: Path | None = None
    broker_host: str | None = None
    broker_port: int | None = None
    enrol_timeout_s: float = 60.0
    press_timeout_s: float = 30.0  # per button / door move in the self-test
    skip_selftest: bool = False
    auto_press: bool = False
    simulate: bool = False
    reprovision: bool = False

    @classmethod
    def from_file(cls, path: Path) -> dict[str, Any]:
        """An answers file (TOML or JSON) as option values; paths relative to the file."""
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else tomlkit.parse(text).unwrap()
        except (OSError, ValueError) as err:
            raise BadInput(f"cannot read the answers file {path}: {err}") from err
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadInput(f"{path}: unknown answers {', '.join(unknown)}")
        for key in ("csr_out", "cert_in", "ca_file", "operators_dir"):
            if isinstance(data.get(key), str):
                value = Path(data[key]).expanduser()
                data[key] = value if value.is_absolute() else (path.parent / value).resolve()
        return data


class ProvisionState:
    """The state file: which steps are done, with what, and the answers given."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}

    def load(self) -> ProvisionState:
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError as err:
                raise KioskError(f"{self.path} is damaged ({err}); use --reprovision") from err
        if self.data.get("schema") != STATE_SCHEMA:
            self.data = {
                "schema": STATE_SCHEMA,
                "run_id": str(uuid.uuid4()),
                "started_at": _now(),
                "steps": {},
                "answers": {},
            }
        return self

    def done(self, step: str) -> bool:
        return bool(self.data["steps"].get(step, {}).get("done_at"))

    def step(self, step: str) -> dict[str, Any]:
        return self.data["steps"].setdefault(step, {})

    def finish(self, step: str, **info: Any) -> None:
        self.data["steps"][step] = {**self.step(step), **info, "done_at": _now()}
        self.save()

    def undo(self, *steps: str) -> None:
        for step in steps:
            self.data["steps"].pop(step, None)
        self.save()

    def save(self) -> None:
        blob = json.dumps(self.data, indent=2, ensure_ascii=False).encode()
        _atomic_write(self.path, blob, 0o600)

    def archive(self) -> None:
        if self.path.exists():
            os.replace(self.path, self.path.with_name("state.previous.json"))
        self.data = {}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --- where things go ---------------------------------------------------------------------


@dataclass(frozen=True)
class Paths:
    config: Path
    state_dir: Path
    ca_file: Path
    cert_file: Path
    key_file: Path
    trust_dir: Path

    @property
    def work(self) -> Path:
        return self.state_dir / "provisioning"

    @property
    def pending_key(self) -> Path:
        return self.state_dir / "pki" / PENDING_KEY

    @classmethod
    def of(cls, config: cfg.Config, config_path: Path) -> Paths:
        base = config_path.parent
        m = config.mqtt
        return cls(
            config=config_path,
            state_dir=config.storage.state_dir,
            ca_file=m.ca_file or base / "pki" / "ca.crt",
            cert_file=m.cert_file or base / "pki" / "kiosk.crt",
            key_file=m.key_file or base / "pki" / "kiosk.key",
            trust_dir=m.trust_dir or base / "operators",
        )


# --- config file edits --------------------------------------------------------------------


BLANK_CONFIG = """# kiosk-edge configuration, written by `kiosk provision` (see config/config.example.toml).
[kiosk]
id = "UNPROVISIONED"
"""


def edit_config(path: Path, changes: dict[str, Any]) -> cfg.Config:
    """Set dotted keys (comments kept), validate the whole file, replace it atomically."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, BLANK_CONFIG.encode(), 0o644)
    document = tomlkit.parse(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        node: Any = document
        parts = key.split(".")
        for part in parts[:-1]:
            if part not in node:
                node[part] = tomlkit.table()
            node = node[part]
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = str(value) if isinstance(value, Path) else value
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(tomlkit.dumps(document))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        try:
            config = cfg.load(tmp, env={})
        except ConfigError as err:
            problems = "; ".join(str(p) for p in err.problems) or str(err)
            raise BadInput(f"these answers make an invalid configuration: {problems}") from err
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return config


# --- certificates -------------------------------------------------------------------------


def device_serial(explicit: str | None = None) -> str:
    """The Pi's serial number (what central's claim allowlists); elsewhere the machine id."""
    if explicit:
        return explicit
    for source in (Path("/proc/device-tree/serial-number"), Path("/etc/machine-id")):
        try:
            value = source.read_text().strip("\x00\n ")
        except OSError:
            continue
        if value:
            return value[:64]
    return platform.node()[:64] or "unknown"


def _same_public_key(cert_file: Path, key_file: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError):
        return False
    return cert.public_key().public_numbers() == key.public_key().public_numbers()


def _load_public_key(path: Path) -> bytes:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as err:
        raise BadInput(f"{path} is not a PEM public key: {err}") from err
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise BadInput(f"{path} is not an ECDSA P-256 public key")
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- the steps -----------------------------------------------------------------------------


class Waiting(KioskError):
    """Provisioning paused on purpose: the offline CSR must be signed at the center."""

    code = "waiting"
    exit_code = 0


class Provisioner:
    def __init__(self, config_path: Path, options: Options, ui: Technician) -> None:
        self.config_path = config_path
        self.options = options
        self.ui = ui
        self.config = self._load()
        self.paths = Paths.of(self.config, config_path)
        self.state = ProvisionState(self.paths.work / "state.json")

    def _load(self) -> cfg.Config:
        if not self.config_path.exists():
            return edit_config(self.config_path, {})
        return cfg.load(self.config_path, env={})

    # --- driving ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.paths.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.options.reprovision:
            self.state.archive()
            self.paths.pending_key.unlink(missing_ok=True)
        self.state.load()
        self._remember_options()
        for name in STEPS:
            if self.state.done(name):
                self.ui.say(f"✓ {name}: đã xong / already done")
                continue
            getattr(self, f"step_{name}")()
        return self.summary()

    def _remember_options(self) -> None:
        """Answers for later steps given in an earlier run count in this one (resume)."""
        kept = self.state.data.setdefault("options", {})
        for name in REMEMBERED:
            given = getattr(self.options, name)
            if given is not None:
                kept[name] = str(given) if isinstance(given, Path) else given
            elif name in kept:
                value = kept[name]
                setattr(
                    self.options, name, Path(value) if name.endswith(("_dir", "_file")) else value
                )
        self.state.save()

    def status(self) -> dict[str, Any]:
        self.state.load()
        steps = {s: self.state.data["steps"].get(s, {}).get("done_at") for s in STEPS}
        pending = next((s for s in STEPS if not steps[s]), None)
        enrolment = self.state.data["steps"].get("enrolment", {})
        cert = certificate_info(self.paths.cert_file)
        return {
            "kiosk_id": self.config.kiosk.id,
            "site": self.config.kiosk.site,
            "provisioned": pending is None,
            "next_step": pending,
            "waiting_for": enrolment.get("waiting_for"),
            "steps": steps,
            "certificate": cert,
            "broker": (
                f"{self.config.mqtt.host}:{self.config.mqtt.port}"
                if self.config.mqtt.type == "broker"
                else None
            ),
            "selftest": self.state.data["steps"].get("selftest", {}).get("verdict"),
        }

    def summary(self) -> dict[str, Any]:
        return {
            **self.status(),
            "checks": self.state.data["steps"].get("selftest", {}).get("checks"),
        }

    # --- 1. identity ------------------------------------------------------------------

    def step_identity(self) -> None:
        o, c = self.options, self.config
        previous = self.state.data.get("answers", {})
        ui = self.ui

        def value(name: str, given: Any, current: Any, question: str) -> Any:
            default = given if given is not None else previous.get(name, current)
            if given is not None or not ui.interactive:
                return default
            return ui.ask(question, None if default is None else str(default))

        current_id = None if c.kiosk.id == "UNPROVISIONED" else c.kiosk.id
        kiosk_id = value("kiosk_id", o.kiosk_id, current_id, "Mã ki-ốt / kiosk id")
        if not kiosk_id:
            raise BadInput("Thiếu mã ki-ốt / the kiosk id is missing (--kiosk-id)")
        kiosk_id = str(kiosk_id).strip().upper()
        answers = {
            "kiosk_id": kiosk_id,
            "site": value("site", o.site, c.kiosk.site, "Địa điểm / site"),
            "location": value("location", o.location, c.kiosk.location, "Vị trí / location"),
            "paper_width_mm": int(
                value(
                    "paper_width_mm",
                    o.paper_width_mm,
                    c.printer.paper_width_mm,
                    "Khổ giấy in (58 hoặc 80 mm) / paper width",
                )
            ),
        }
        current_pins = {
            **c.buttons.pins.model_dump(),
            "tamper": c.tamper.pin,
            "led": c.led.pin,
        }
        pins = {}
        for name in PIN_NAMES:
            pins[name] = int(
                value(
                    f"pin_{name}",
                    o.pins.get(name),
                    previous.get("pins", {}).get(name, current_pins[name]),
                    f"Chân GPIO (BCM) cho {name} / GPIO pin for {name}",
                )
            )
        if len(set(pins.values())) != len(pins):
            raise BadInput(f"Hai phần dùng chung một chân GPIO / two parts share a pin: {pins}")
        answers["pins"] = pins
        changes: dict[str, Any] = {
            "kiosk.id": kiosk_id,
            "kiosk.site": answers["site"] or "",
            "kiosk.location": answers["location"] or "",
            "printer.paper_width_mm": answers["paper_width_mm"],
            "tamper.pin": pins["tamper"],
            "led.pin": pins["led"],
        }
        changes.update({f"buttons.pins.{n}": pins[n] for n in PIN_NAMES[:5]})
        if previous.get("kiosk_id") not in (None, kiosk_id):
            # Another identity: the key and certificate made for the old one are not reused.
            self.state.undo("device_key", "enrolment", "trust", "selftest", "report")
            self.paths.pending_key.unlink(missing_ok=True)
        self.config = edit_config(self.config_path, changes)
        self.state.data["answers"] = answers
        self.state.finish("identity", kiosk_id=kiosk_id)
        self.ui.say(f"✓ Ki-ốt {kiosk_id} — {answers['site'] or '-'}")

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

    # --- 4. trust ---------------------------------------------------------------------

    def step_trust(self) -> None:
        o = self.options
        enrolment = self.state.step("enrolment")
        answer: dict[str, Any] = {}
        if enrolment.get("answer") and Path(enrolment["answer"]).exists():
            answer = json.loads(Path(enrolment["answer"]).read_text())
        operators: dict[str, bytes] = {}
        for entry in answer.get("operators", []):
            tmp = self.paths.work / ".operator.pem"
            tmp.write_text(entry["public_key"])
            operators[entry["id"]] = _load_public_key(tmp)
            tmp.unlink()
        if o.operators_dir:
            for pem in sorted(Path(o.operators_dir).glob("*.pem")):
                operators[pem.stem] = _load_public_key(pem)
        for operator, blob in operators.items():
            _atomic_write(self.paths.trust_dir / f"{operator}.pem", blob, 0o644)
        broker = answer.get("broker", {})
        host = o.broker_host or broker.get("host")
        port = o.broker_port or broker.get("port")
        if host is None and self.ui.interactive:
            host = self.ui.ask("Địa chỉ máy chủ MQTT / broker host", self.config.mqtt.host)
        if not host:
            raise BadInput(
                "Thiếu địa chỉ máy chủ MQTT / the broker host is missing (--broker-host)"
            )
        changes: dict[str, Any] = {
            "mqtt.type": "broker",
            "mqtt.host": host,
            "mqtt.port": int(port or 8883),
            "mqtt.tls": True,
            "mqtt.ca_file": self.paths.ca_file,
            "mqtt.cert_file": self.paths.cert_file,
            "mqtt.key_file": self.paths.key_file,
            "mqtt.trust_dir": self.paths.trust_dir,
        }
        if broker.get("topic_prefix"):
            changes["mqtt.topic_prefix"] = broker["topic_prefix"]
        if broker.get("protocol"):
            changes["mqtt.protocol"] = broker["protocol"]
        self.paths.trust_dir.mkdir(parents=True, exist_ok=True)
        self.config = edit_config(self.config_path, changes)
        self.state.finish(
            "trust", broker=f"{host}:{changes['mqtt.port']}", operators=sorted(operators)
        )
        self.ui.say(
            f"✓ Máy chủ {host}:{changes['mqtt.port']}, {len(operators)} khóa người vận hành "
            "/ broker and trust store installed"
        )

    # --- 5. self-test ----------------------------------------------------------------

    def step_selftest(self) -> None:
        from edge.selftest import exit_code, render_table
        from provisioning.hwtest import technician_selftest

        if self.options.skip_selftest:
            self.state.finish("selftest", verdict="skipped", checks=[])
            return
        config = self.config.simulated() if self.options.simulate else self.config
        if _daemon_answers(config):
            raise BadInput(
                "Dịch vụ ki-ốt đang chạy và giữ phần cứng: dừng nó trước "
                "(sudo systemctl stop kiosk-edge) rồi chạy lại / the daemon is running and holds "
                "the hardware: stop it first, then run 'kiosk provision' again"
            )
        if self.options.auto_press and config.buttons.type != "simulated":
            raise BadInput("--auto-press only drives simulated pins (use --simulate)")
        parts = _LocalParts(config)
        try:
            checks = technician_selftest(
                config,
                ui=self.ui,
                out_dir=self.paths.work,
                printer=parts.printer,
                auto=self.options.auto_press,
                timeout_s=self.options.press_timeout_s,
            )
        finally:
            parts.close()
        self.ui.say(render_table(checks))
        verdict = "pass" if exit_code(checks) == 0 else "fail"
        step = {"verdict": verdict, "checks": [c.as_dict() for c in checks]}
        if verdict == "fail":
            self.state.data["steps"]["selftest"] = step
            self.state.save()
            raise SelfTestFailed(
                "Kiểm tra phần cứng chưa đạt: sửa rồi chạy lại 'kiosk provision' "
                "/ the hardware self-test failed: fix the parts above and run again"
            )
        self.state.finish("selftest", **step)

    # --- 6. report ---------------------------------------------------------------------

    def step_report(self) -> None:
        from edge.fleet import queue_event, queue_record
        from edge.store.outbox import Outbox

        config = self.config.simulated() if self.options.simulate else self.config
        status = self.status()
        selftest = self.state.data["steps"].get("selftest", {})
        summary = {
            "kiosk_id": config.kiosk.id,
            "site": config.kiosk.site,
            "location": config.kiosk.location,
            "run_id": self.state.data["run_id"],
            "enrolment": self.state.data["steps"]["enrolment"].get("mode"),
            "certificate_serial": (status["certificate"] or {}).get("serial"),
            "certificate_not_after": (status["certificate"] or {}).get("not_after"),
            "broker": status["broker"],
            "selftest": selftest.get("verdict"),
            "checks": [
                {"part": c["part"], "verdict": c["verdict"]} for c in selftest.get("checks", [])
            ],
            "serial": device_serial(self.options.serial),
            "finished_at": _now(),
        }
        parts = _LocalParts(config)
        try:
            outbox = Outbox(parts.store, parts.key)
            run = self.state.data["run_id"]
            queue_record(outbox, config.kiosk.id, "provisioning", summary, message_id=f"prov-{run}")
            queue_event(
                outbox,
                config.kiosk.id,
                "provisioning.completed",
                "info" if summary["selftest"] != "fail" else "warning",
                {"run_id": run, "selftest": summary["selftest"]},
            )
            printed = _print_summary(parts.printer, config, summary)
        finally:
            parts.close()
        self.state.finish("report", printed=printed)
        self.ui.say("✓ Tóm tắt đã in và gửi về trung tâm / summary printed and queued for central")


def _daemon_answers(config: cfg.Config) -> bool:
    import urllib.error
    import urllib.request

    url = f"http://{config.web.host}:{config.web.port}/api/health"
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # something answers HTTP there: a daemon still starting
    except (urllib.error.URLError, OSError):
        return False


class SelfTestFailed(KioskError):
    code = "selftest_failed"
    exit_code = 3


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


class _LocalParts:
    """Store, data key and print queue opened by provisioning (the daemon may be stopped)."""

    def __init__(self, config: cfg.Config) -> None:
        from edge.adapters import build_printer
        from edge.events import EventBus
        from edge.printing import PrintQueue
        from edge.store import DataKey, Store

        config.storage.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key = DataKey.load_or_create(config.storage.data_key_path)
        self.store = Store(config.storage.db_path)
        self.store.open()
        self.printer = PrintQueue(
            build_printer(config), store=self.store, key=self.key, bus=EventBus()
        )

    def close(self) -> None:
        self.store.close()


def _print_summary(printer: Any, config: cfg.Config, summary: dict[str, Any]) -> bool:
    from edge.receipts import Receipt

    receipt = Receipt(paper_width_mm=config.printer.paper_width_mm, profile=config.printer.profile)
    receipt.text("LẮP ĐẶT KI-ỐT", size=32, bold=True, center=True)
    receipt.text("Provisioning summary", size=20, center=True)
    receipt.rule()
    receipt.text(
        f"Ki-ốt: {summary['kiosk_id']}\n"
        f"Địa điểm: {summary['site'] or '-'}\n"
        f"Vị trí: {summary['location'] or '-'}\n"
        f"Đăng ký: {summary['enrolment']}\n"
        f"Chứng thư: {summary['certificate_serial']}\n"
        f"Hết hạn: {(summary['certificate_not_after'] or '-')[:10]}\n"
        f"Máy chủ: {summary['broker'] or '-'}"
    )
    receipt.rule()
    marks = {"ok": "ĐẠT", "warn": "CHÚ Ý", "fail": "LỖI"}
    receipt.text(
        "\n".join(
            f"{c['part']}: {marks.get(c['verdict'], c['verdict'])}" for c in summary["checks"]
        )
        or "Kiểm tra phần cứng: bỏ qua"
    )
    receipt.feed(2)
    outcome = printer.submit("provisioning", "Tóm tắt lắp đặt", receipt.build())
    return bool(outcome.printed)


# --- factory reset ---------------------------------------------------------------------------


def shred(path: Path) -> None:
    """Overwrite a file with random bytes, sync, then unlink. On flash (SD card, eMMC) wear
    levelling may keep old blocks: the data key is what makes the database unreadable."""
    try:
        size = path.stat().st_size
        with path.open("r+b") as f:
            f.write(os.urandom(max(size, 1)))
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        pass
    path.unlink(missing_ok=True)


def factory_reset(config: cfg.Config, config_path: Path) -> dict[str, Any]:
    """Keys shredded, the state directory (database, outbox, print jobs, provisioning state)
    removed, the config back to an unprovisioned kiosk with fleet reporting off. The update
    signing keys are root's (setup-pi.sh) and stay: they are not the kiosk's identity."""
    paths = Paths.of(config, config_path)
    removed: list[str] = []
    secrets = [paths.key_file, paths.pending_key, config.storage.data_key_path]
    secrets += [paths.key_file.with_name(paths.key_file.name + ".bak")]
    for secret in secrets:
        if secret.exists():
            shred(secret)
            removed.append(str(secret))
    if paths.state_dir.exists():
        for item in sorted(paths.state_dir.rglob("*"), reverse=True):
            if item.is_file() and not item.is_symlink():
                shred(item)
        shutil.rmtree(paths.state_dir, ignore_errors=True)
        removed.append(str(paths.state_dir))
    for public in (paths.cert_file, paths.cert_file.with_name(paths.cert_file.name + ".bak")):
        if public.exists():
            public.unlink()
            removed.append(str(public))
    for directory in (paths.trust_dir,):
        if directory.exists():
            shutil.rmtree(directory)
            removed.append(str(directory))
    edit_config(
        config_path,
        {
            "kiosk.id": "UNPROVISIONED",
            "kiosk.site": "",
            "kiosk.location": "",
            "mqtt.type": "off",
        },
    )
    logger.warning("factory reset done", extra={"removed": len(removed)})
    return {"reset": True, "removed": removed}
