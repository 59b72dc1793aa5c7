"""The hardware self-test a technician walks through: camera frame saved for a look, each button
pressed in turn, printer test page, LED blink, tamper switch. In simulation the same steps are
driven through gpiozero's MockFactory pins (auto), so the same code paths are exercised."""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from edge import config as cfg
from edge.controls import BUTTON_NAMES, Controls, SimulatedPins
from edge.events import Event, EventBus
from edge.selftest import Check

logger = logging.getLogger(__name__)

BUTTON_LABELS = {
    "back": "Quay lại / Back",
    "next": "Tiếp / Next",
    "ok": "Đồng ý / OK",
    "cancel": "Hủy / Cancel",
    "help": "Trợ giúp / Help",
}


class Technician(Protocol):
    """Who answers the prompts: the console, or a script (answers given up front)."""

    interactive: bool

    def say(self, text: str) -> None: ...

    def ask(self, question: str, default: str | None = None) -> str: ...

    def confirm(self, question: str, default: bool = True) -> bool: ...


def technician_selftest(
    config: cfg.Config,
    *,
    ui: Technician,
    out_dir: Path,
    printer: Any,
    auto: bool,
    timeout_s: float = 30.0,
) -> list[Check]:
    """Run every step; a missing part fails its own row, never the whole test."""
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    checks = [_camera(config, ui, out_dir)]
    bus = EventBus()
    events: queue.Queue[Event] = queue.Queue()
    bus.subscribe("button.pressed", events.put)
    bus.subscribe("tamper.", events.put)
    bus.start()
    controls = Controls(buttons=config.buttons, tamper=config.tamper, led=config.led, bus=bus)
    controls.start()
    pins = SimulatedPins(controls)
    try:
        if auto and config.tamper.type == "simulated":
            pins.set_door("closed")  # a door that starts shut, as on a kiosk in the field
            _drain(events, 0.2)
        checks += _buttons(controls, pins, events, ui, auto, timeout_s)
        checks.append(_printer(printer, config, ui))
        checks.append(_led(controls, ui, auto))
        checks.append(_tamper(controls, pins, events, ui, auto, timeout_s))
    finally:
        controls.stop()
        bus.stop()
    return checks


def _drain(events: queue.Queue[Event], wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            events.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            return


def _camera(config: cfg.Config, ui: Technician, out_dir: Path) -> Check:
    import cv2

    from edge.adapters import build_camera
    from edge.errors import HardwareUnavailable

    camera = build_camera(config.camera)
    try:
        camera.open()
        frame = camera.read()
    except HardwareUnavailable as err:
        return Check("camera", "fail", str(err))
    except Exception as err:  # a driver crash is a failed row, not a failed provisioning
        return Check("camera", "fail", f"{type(err).__name__}: {err}")
    finally:
        camera.close()
    path = out_dir / "camera-frame.jpg"
    cv2.imwrite(str(path), frame)
    h, w = frame.shape[:2]
    ui.say(f"Ảnh camera đã lưu / camera frame saved: {path} ({w}x{h})")
    if ui.interactive and not ui.confirm("Ảnh có thấy rõ mặt kính không? / Is the platen in view?"):
        return Check("camera", "fail", f"{w}x{h} frame saved to {path}; technician: not in view")
    return Check("camera", "ok", f"{w}x{h} frame saved to {path}")


def _buttons(
    controls: Controls,
    pins: SimulatedPins,
    events: queue.Queue[Event],
    ui: Technician,
    auto: bool,
    timeout_s: float,
) -> list[Check]:
    if "buttons" in controls.errors:
        return [Check("buttons", "fail", controls.errors["buttons"])]
    checks = []
    for name in BUTTON_NAMES:
        _drain(events, 0.0)
        ui.say(f"Nhấn nút {BUTTON_LABELS[name]} / press the {name} button")
        if auto:
            threading.Thread(target=pins.press, args=(name,), daemon=True).start()
        wrong: list[str] = []
        deadline = time.monotonic() + timeout_s
        got = False
        while time.monotonic() < deadline:
            try:
                event = events.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if event.kind != "button.pressed":
                continue
            if event.source == name:
                got = True
                break
            wrong.append(event.source)
        pin = getattr(controls.buttons_config.pins, name)
        if got:
            extra = f" (also pressed: {', '.join(wrong)})" if wrong else ""
            checks.append(Check(f"button.{name}", "ok", f"GPIO{pin} pressed{extra}"))
        else:
            hint = f"; pressed instead: {', '.join(wrong)} (wiring swapped?)" if wrong else ""
            checks.append(
                Check(f"button.{name}", "fail", f"GPIO{pin}: no press in {timeout_s:.0f} s{hint}")
            )
    return checks


def _printer(printer: Any, config: cfg.Config, ui: Technician) -> Check:
    from edge.printing import print_test_page

    ui.say("In trang thử / printing the test page")
    try:
        outcome = print_test_page(printer, config)
    except Exception as err:
        return Check("printer", "fail", f"{type(err).__name__}: {err}")
    where = printer.transport.describe()
    if not outcome.printed:
        return Check("printer", "fail", f"{where}: {outcome.error}")
    if ui.interactive and not ui.confirm("Trang thử in rõ không? / Is the test page readable?"):
        return Check("printer", "fail", f"{where}: technician: test page not readable")
    return Check("printer", "ok", f"{where}: test page printed (job {outcome.job_id})")


def _led(controls: Controls, ui: Technician, auto: bool) -> Check:
    if controls.led_config.type == "none":
        return Check("led", "warn", "no status LED configured", essential=False)
    if "led" in controls.errors:
        return Check("led", "fail", controls.errors["led"])
    controls.set_led("fast")
    try:
        if auto or not ui.interactive:
            seen = set()
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline and len(seen) < 2:
                seen.add(controls.led_state()["lit"])
                time.sleep(0.02)
            if seen != {True, False}:
                return Check("led", "fail", f"GPIO{controls.led_config.pin} did not blink")
            return Check("led", "ok", f"GPIO{controls.led_config.pin} blinked (pin read back)")
        if not ui.confirm("Đèn trạng thái có nhấp nháy không? / Is the status LED blinking?"):
            return Check("led", "fail", f"GPIO{controls.led_config.pin}: technician saw no blink")
        return Check("led", "ok", f"GPIO{controls.led_config.pin} blinked (technician)")
    finally:
        controls.set_led("off")


def _tamper(
    controls: Controls,
    pins: SimulatedPins,
    events: queue.Queue[Event],
    ui: Technician,
    auto: bool,
    timeout_s: float,
) -> Check:
    if controls.tamper_config.type == "none":
        return Check("tamper", "warn", "no door switch configured", essential=False)
    if "tamper" in controls.errors:
        return Check("tamper", "fail", controls.errors["tamper"])
    pin = controls.tamper_config.pin
    seen = []
    close = ("closed", "tamper.closed", "Đóng cửa ki-ốt / close the kiosk door")
    steps = [("open", "tamper.opened", "Mở cửa ki-ốt / open the kiosk door"), close]
    if controls.door() == "open":  # the technician works with the door open: shut it first
        steps.insert(0, close)
    for state, kind, text in steps:
        _drain(events, 0.0)
        ui.say(text)
        if auto:
            pins.set_door(state)  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                event = events.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if event.kind == kind:
                seen.append(state)
                break
        if seen[-1:] != [state]:
            return Check("tamper", "fail", f"GPIO{pin}: door never reported {state}")
    return Check("tamper", "ok", f"GPIO{pin}: door opened and closed")
