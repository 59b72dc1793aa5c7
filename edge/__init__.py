"""kiosk-edge: the daemon inside a smart public-service kiosk."""

__version__ = "0.1.0"
