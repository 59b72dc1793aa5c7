"""The Provisioner: the six steps in order, those done skipped (resume), and its status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge import config as cfg
from edge.errors import BadInput, KioskError
from edge.fleet.certificates import _atomic_write, certificate_info
from edge.provisioned import STEPS
from provisioning.hwtest import Technician
from provisioning.provision.enrolment import Enrolment
from provisioning.provision.files import Paths, edit_config
from provisioning.provision.keys import _load_public_key, device_serial
from provisioning.provision.report import _daemon_answers, _LocalParts, _print_summary
from provisioning.provision.state import PIN_NAMES, REMEMBERED, Options, ProvisionState, _now


class Provisioner(Enrolment):
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

    # --- 2. device key, 3. enrolment: see Enrolment (enrolment.py) -------------------

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


class SelfTestFailed(KioskError):
    code = "selftest_failed"
    exit_code = 3
