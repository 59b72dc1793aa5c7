"""The figures measured today: start, memory and stop of the simulated daemon."""

from __future__ import annotations

import logging

from bench.daemon import simulated_daemon
from bench.registry import figure

logger = logging.getLogger(__name__)

SETTLE_S = 2.0  # camera streaming, printer polled, web serving: memory has mostly settled


@figure("daemon cold start to ready", unit="s", below=10.0)
def cold_start() -> float:
    """Spawn to the READY=1 datagram; the web UI must then answer /api/health with 200."""
    with simulated_daemon() as daemon:
        daemon.require_health()
        return daemon.ready_s


@figure("resident memory after start", unit="MB", below=400.0)
def resident_memory() -> float:
    with simulated_daemon() as daemon:
        daemon.require_health()
        daemon.idle(SETTLE_S)
        return daemon.rss_mb()


@figure("clean stop after SIGTERM", unit="s")
def clean_stop() -> float:
    with simulated_daemon() as daemon:
        daemon.require_health()
        daemon.idle(SETTLE_S)
        return daemon.terminate()
