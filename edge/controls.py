"""The kiosk's physical controls: five buttons, the door (tamper) switch and the status LED."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

from edge.adapters.gpio import factory_for
from edge.config import ButtonsSection, LedSection, TamperSection
from edge.errors import BadInput, HardwareUnavailable
from edge.events import Event, Poster

logger = logging.getLogger(__name__)

BUTTON_NAMES = ("back", "next", "ok", "cancel", "help")
LONG_PRESS_BUTTON = "cancel"  # held = call staff; a short press cancels
LedPattern = Literal["off", "on", "slow", "fast"]
_BLINK = {"slow": (1.0, 1.0), "fast": (0.15, 0.15)}


class Controls:
    """Builds the gpiozero devices and turns their callbacks into events on the bus.

    gpiozero calls back on its own threads, so every callback only posts an Event.
    """

    def __init__(
        self,
        *,
        buttons: ButtonsSection,
        tamper: TamperSection,
        led: LedSection,
        bus: Poster,
    ) -> None:
        self.buttons_config = buttons
        self.tamper_config = tamper
        self.led_config = led
        self.bus = bus
        self._buttons: dict[str, Any] = {}
        self._tamper: Any = None
        self._led: Any = None
        self._led_pattern: LedPattern = "off"
        self._last_accepted: dict[str, float] = {}
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self.errors: dict[str, str] = {}

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Open each part; a part that is not there is recorded, the others still work."""
        self._open_buttons()
        self._open_tamper()
        self._open_led()

    def stop(self) -> None:
        for device in [*self._buttons.values(), self._tamper, self._led]:
            if device is not None:
                try:
                    device.close()
                except Exception:
                    logger.warning("GPIO device did not close cleanly", exc_info=True)
        self._buttons.clear()
        self._tamper = self._led = None

    def _open_buttons(self) -> None:
        from gpiozero import Button

        cfg = self.buttons_config
        try:
            factory = factory_for(cfg.type)
            for name in BUTTON_NAMES:
                pin = getattr(cfg.pins, name)
                button = Button(
                    pin,
                    pull_up=True,
                    bounce_time=cfg.bounce_ms / 1000 or None,
                    hold_time=cfg.long_press_s,
                    pin_factory=factory,
                )
                if name == LONG_PRESS_BUTTON:
                    button.when_held = lambda n=name: self._on_held(n)
                    button.when_released = lambda n=name: self._on_released(n)
                    button.when_pressed = lambda n=name: self._on_down(n)
                else:
                    button.when_pressed = lambda n=name: self._on_pressed(n)
                self._buttons[name] = button
        except HardwareUnavailable as err:
            self.errors["buttons"] = str(err)
            logger.error("buttons unavailable: %s", err)
        except Exception as err:  # gpiozero raises its own errors for busy/invalid pins
            self.errors["buttons"] = f"{type(err).__name__}: {err}"
            logger.error("buttons unavailable: %s", self.errors["buttons"])

    def _open_tamper(self) -> None:
        from gpiozero import Button

        cfg = self.tamper_config
        if cfg.type == "none":
            return
        try:
            # The switch closes the pin to GND while the door is shut.
            switch = Button(
                cfg.pin,
                pull_up=True,
                bounce_time=cfg.bounce_ms / 1000 or None,
                pin_factory=factory_for(cfg.type),
            )
            switch.when_released = lambda: self._post_tamper("opened")
            switch.when_pressed = lambda: self._post_tamper("closed")
            self._tamper = switch
        except Exception as err:
            self.errors["tamper"] = f"{type(err).__name__}: {err}"
            logger.error("tamper switch unavailable: %s", self.errors["tamper"])

    def _open_led(self) -> None:
        from gpiozero import LED

        cfg = self.led_config
        if cfg.type == "none":
            return
        try:
            self._led = LED(cfg.pin, pin_factory=factory_for(cfg.type))
        except Exception as err:
            self.errors["led"] = f"{type(err).__name__}: {err}"
            logger.error("status LED unavailable: %s", self.errors["led"])

    # --- callbacks (gpiozero threads) -------------------------------------------------

    def _debounced(self, name: str) -> bool:
        # gpiozero's MockPin ignores bounce_time and some kernels pass bounces through;
        # a second press inside the bounce window is the same press.
        now = time.monotonic()
        with self._lock:
            last = self._last_accepted.get(name, -1e9)
            if (now - last) * 1000 < self.buttons_config.bounce_ms:
                return False
            self._last_accepted[name] = now
            return True

    def _on_pressed(self, name: str) -> None:
        if self._debounced(name):
            self.bus.post(Event("button.pressed", name))

    def _on_down(self, name: str) -> None:
        with self._lock:
            self._held.discard(name)

    def _on_held(self, name: str) -> None:
        with self._lock:
            self._held.add(name)
        self.bus.post(Event("button.long_press", name, {"action": "call_staff"}))

    def _on_released(self, name: str) -> None:
        with self._lock:
            was_held = name in self._held
            self._held.discard(name)
        if not was_held and self._debounced(name):
            self.bus.post(Event("button.pressed", name))

    def _post_tamper(self, state: str) -> None:
        severity = "critical" if state == "opened" else "info"
        self.bus.post(Event(f"tamper.{state}", "tamper", {"severity": severity}))

    # --- queries and outputs ------------------------------------------------------------

    def button_states(self) -> dict[str, bool]:
        return {name: bool(b.is_pressed) for name, b in self._buttons.items()}

    def door(self) -> str:
        if self._tamper is None:
            return "unknown"
        return "closed" if self._tamper.is_pressed else "open"

    def set_led(self, pattern: LedPattern) -> None:
        self._led_pattern = pattern
        if self._led is None:
            return
        if pattern == "on":
            self._led.on()
        elif pattern == "off":
            self._led.off()
        else:
            on, off = _BLINK[pattern]
            self._led.blink(on_time=on, off_time=off, background=True)

    def led_state(self) -> dict[str, Any]:
        return {"pattern": self._led_pattern, "lit": bool(self._led.value) if self._led else None}

    def status(self) -> dict[str, Any]:
        cfg = self.buttons_config
        return {
            "buttons": {
                "ok": "buttons" not in self.errors,
                "type": cfg.type,
                "pins": cfg.pins.model_dump(),
                "pressed": self.button_states(),
                "error": self.errors.get("buttons"),
            },
            "tamper": {
                "ok": "tamper" not in self.errors,
                "type": self.tamper_config.type,
                "door": self.door(),
                "error": self.errors.get("tamper"),
            },
            "led": {
                "ok": "led" not in self.errors,
                "type": self.led_config.type,
                **self.led_state(),
                "error": self.errors.get("led"),
            },
        }


class SimulatedPins:
    """Drives MockFactory pins the way a finger would: through gpiozero's own edge path."""

    def __init__(self, controls: Controls) -> None:
        self.controls = controls

    def _pin(self, number: int) -> Any:
        from edge.adapters.gpio import mock_factory

        return mock_factory().pin(number)

    def press(self, name: str, *, hold_s: float = 0.1) -> None:
        if name not in BUTTON_NAMES:
            raise BadInput(f"no button named {name!r}; buttons are {', '.join(BUTTON_NAMES)}")
        if self.controls.buttons_config.type != "simulated":
            raise BadInput("buttons are real GPIO here; press them with a finger")
        pin = self._pin(getattr(self.controls.buttons_config.pins, name))
        pin.drive_low()  # the button shorts the pulled-up pin to GND
        time.sleep(hold_s)
        pin.drive_high()

    def set_door(self, state: Literal["open", "closed"]) -> None:
        if self.controls.tamper_config.type != "simulated":
            raise BadInput("the tamper switch is not simulated here")
        pin = self._pin(self.controls.tamper_config.pin)
        if state == "open":
            pin.drive_high()
        else:
            pin.drive_low()
