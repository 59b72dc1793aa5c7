"""Buttons, tamper switch and LED through gpiozero's MockFactory: the real gpiozero path."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from edge.adapters.gpio import mock_factory
from edge.config import ButtonsSection, LedSection, TamperSection
from edge.controls import Controls, SimulatedPins
from edge.errors import BadInput
from edge.events import EventBus
from tests.conftest import wait_for


@pytest.fixture
def controls() -> Iterator[tuple[Controls, EventBus]]:
    bus = EventBus()
    bus.start()
    c = Controls(
        buttons=ButtonsSection(type="simulated", long_press_s=0.3, bounce_ms=40),
        tamper=TamperSection(type="simulated"),
        led=LedSection(type="simulated"),
        bus=bus,
    )
    c.start()
    try:
        yield c, bus
    finally:
        c.stop()
        bus.stop()
        mock_factory().reset()


def events(bus: EventBus, prefix: str = "") -> list[tuple[str, str]]:
    bus.drain()
    return [(e.kind, e.source) for e in bus.recent(prefix)]


def test_each_button_press_reaches_the_bus(controls) -> None:
    c, bus = controls
    sim = SimulatedPins(c)
    for name in ("back", "next", "ok", "help", "cancel"):
        sim.press(name, hold_s=0.01)
        time.sleep(0.05)  # further apart than the bounce window
    assert events(bus, "button.") == [
        ("button.pressed", "back"),
        ("button.pressed", "next"),
        ("button.pressed", "ok"),
        ("button.pressed", "help"),
        ("button.pressed", "cancel"),
    ]


def test_pin_levels_follow_the_wiring(controls) -> None:
    c, _ = controls
    pin = mock_factory().pin(c.buttons_config.pins.ok)
    pin.drive_low()  # button shorts the pulled-up pin to ground
    assert c.button_states()["ok"] is True
    pin.drive_high()
    assert c.button_states()["ok"] is False


def test_contact_bounce_is_one_press(controls) -> None:
    c, bus = controls
    pin = mock_factory().pin(c.buttons_config.pins.ok)
    for _ in range(4):  # a bouncing contact: four edges within a few ms
        pin.drive_low()
        pin.drive_high()
    assert events(bus, "button.") == [("button.pressed", "ok")]


def test_holding_cancel_calls_staff_instead_of_cancelling(controls) -> None:
    c, bus = controls
    SimulatedPins(c).press("cancel", hold_s=0.6)
    wait_for(lambda: events(bus, "button."))
    assert events(bus, "button.") == [("button.long_press", "cancel")]
    (event,) = bus.recent("button.long_press")
    assert event.detail == {"action": "call_staff"}


def test_door_switch_reports_opening_and_closing(controls) -> None:
    c, bus = controls
    sim = SimulatedPins(c)
    sim.set_door("closed")
    assert c.door() == "closed"
    sim.set_door("open")
    assert c.door() == "open"
    sim.set_door("closed")
    assert events(bus, "tamper.") == [
        ("tamper.closed", "tamper"),
        ("tamper.opened", "tamper"),
        ("tamper.closed", "tamper"),
    ]
    assert bus.recent("tamper.opened")[0].detail["severity"] == "critical"


def test_led_patterns_drive_the_pin(controls) -> None:
    c, _ = controls
    pin = mock_factory().pin(c.led_config.pin)
    c.set_led("on")
    assert pin.state == 1
    c.set_led("off")
    assert pin.state == 0
    c.set_led("fast")
    seen = set()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and len(seen) < 2:
        seen.add(pin.state)
        time.sleep(0.01)
    assert seen == {0, 1}  # it blinks
    assert c.led_state()["pattern"] == "fast"


def test_pressing_unknown_button_is_bad_input(controls) -> None:
    c, _ = controls
    with pytest.raises(BadInput, match="no button named"):
        SimulatedPins(c).press("launch")


def test_real_gpio_off_pi_is_recorded_not_fatal() -> None:
    bus = EventBus()
    c = Controls(
        buttons=ButtonsSection(type="gpio"),
        tamper=TamperSection(type="none"),
        led=LedSection(type="none"),
        bus=bus,
    )
    c.start()
    try:
        from edge.adapters import gpio

        try:
            gpio.real_factory()
        except Exception:
            assert "no GPIO on this machine" in c.errors["buttons"]
            assert c.status()["buttons"]["ok"] is False
        else:
            pytest.skip("this machine has GPIO")
    finally:
        c.stop()
