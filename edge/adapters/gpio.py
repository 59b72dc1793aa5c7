"""gpiozero pin factories: the real one on a Pi, gpiozero's MockFactory in simulation."""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Any

from edge.errors import HardwareUnavailable

logger = logging.getLogger(__name__)

_mock_lock = threading.Lock()
_mock_factory: Any = None


def mock_factory() -> Any:
    """The one MockFactory of this process, shared by every simulated part.

    Sharing it means a simulated pin has one state, whoever reads or drives it.
    """
    global _mock_factory
    with _mock_lock:
        if _mock_factory is None:
            from gpiozero.pins.mock import MockFactory

            _mock_factory = MockFactory()
        return _mock_factory


def real_factory() -> Any:
    """gpiozero's default factory (lgpio on Raspberry Pi OS Bookworm), or HardwareUnavailable."""
    from gpiozero import Device
    from gpiozero.exc import BadPinFactory, PinFactoryFallback

    try:
        if Device.pin_factory is None:
            with warnings.catch_warnings():
                # One clear error below beats four fallback warnings on stderr.
                warnings.simplefilter("ignore", PinFactoryFallback)
                Device.pin_factory = Device._default_pin_factory()
        return Device.pin_factory
    except (BadPinFactory, ImportError, OSError, RuntimeError) as err:
        raise HardwareUnavailable(
            f'no GPIO on this machine ({err}); set the part\'s type to "simulated"'
        ) from err


def factory_for(kind: str) -> Any:
    if kind == "simulated":
        return mock_factory()
    if kind == "gpio":
        return real_factory()
    raise ValueError(f"no pin factory for part type {kind!r}")
