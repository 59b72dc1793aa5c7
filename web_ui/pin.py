"""The technician PIN: hashed in config, 5 wrong tries lock it for 15 minutes (kept in the
store, so a restart does not reset the count)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from werkzeug.security import check_password_hash

logger = logging.getLogger(__name__)

FAILURES_KEY = "ui.technician.failures"
LOCKED_UNTIL_KEY = "ui.technician.locked_until"


@dataclass(frozen=True)
class PinResult:
    verdict: str  # "ok", "wrong", "locked", "unset", "malformed"
    tries_left: int = 0
    locked_s: float = 0.0


class PinGate:
    def __init__(self, kiosk: Any, *, clock: Any = time.time) -> None:
        self.kiosk = kiosk
        self.clock = clock
        self._lock = threading.Lock()

    @property
    def _ui(self) -> Any:
        return self.kiosk.config.ui

    def _get(self, key: str, default: float) -> float:
        value = self.kiosk.store.get_kv(key)
        try:
            return float(value) if value is not None else default
        except ValueError:
            return default

    def locked_for(self) -> float:
        return max(0.0, self._get(LOCKED_UNTIL_KEY, 0.0) - self.clock())

    def check(self, pin: str) -> PinResult:
        ui = self._ui
        with self._lock:
            if not ui.technician_pin_hash:
                return PinResult("unset")
            left = self.locked_for()
            if left > 0:
                return PinResult("locked", 0, left)
            if not (pin.isdigit() and 4 <= len(pin) <= 12):
                return PinResult("malformed", ui.technician_max_tries - int(self._failures()))
            if check_password_hash(ui.technician_pin_hash, pin):
                self.kiosk.store.set_kv(FAILURES_KEY, "0")
                logger.info("technician PIN accepted")
                return PinResult("ok", ui.technician_max_tries)
            failures = int(self._failures()) + 1
            if failures >= ui.technician_max_tries:
                until = self.clock() + ui.technician_lock_min * 60
                self.kiosk.store.set_kv(LOCKED_UNTIL_KEY, str(until))
                self.kiosk.store.set_kv(FAILURES_KEY, "0")
                logger.warning("technician PIN locked after %d wrong tries", failures)
                return PinResult("locked", 0, until - self.clock())
            self.kiosk.store.set_kv(FAILURES_KEY, str(failures))
            logger.warning("wrong technician PIN", extra={"failures": failures})
            return PinResult("wrong", ui.technician_max_tries - failures)

    def _failures(self) -> float:
        return self._get(FAILURES_KEY, 0.0)
