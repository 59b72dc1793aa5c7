"""The console's store: SQLAlchemy Core, the same SQL on SQLite (default) and PostgreSQL.

schema.py holds the tables; each aggregate's repository is a module of its own, and FleetStore
is all of them over one engine. Times are POSIX seconds (float) everywhere.
"""

from __future__ import annotations

from fleet.store.alerts import Alerts
from fleet.store.base import default_site
from fleet.store.certify import Certify, DecisionError, Signed
from fleet.store.commands import Commands
from fleet.store.dashboard import Dashboard, DashboardPage
from fleet.store.dossiers import Dossiers
from fleet.store.ingest import BatchOutcome, Incoming, Ingest, parse_time
from fleet.store.kiosks import Kiosks
from fleet.store.officers import Officers
from fleet.store.operators import Operators
from fleet.store.payments import Notification, Outcome, Payments
from fleet.store.provisioning import Provisioning
from fleet.store.queues import Queues
from fleet.store.revocations import Revocations
from fleet.store.schema import (
    alerts,
    certificates,
    claims,
    commands,
    dossiers,
    events,
    kiosks,
    login_throttle,
    metadata,
    operators,
    queue_stats,
    queue_tickets,
    records,
    revocations,
    telemetry,
)


class FleetStore(
    Ingest,
    Kiosks,
    Dashboard,
    Commands,
    Alerts,
    Operators,
    Dossiers,
    Provisioning,
    Queues,
    Revocations,
    Officers,
    Certify,
    Payments,
):
    """One engine; every method is a short transaction; safe from several threads."""


__all__ = [
    "BatchOutcome",
    "DashboardPage",
    "DecisionError",
    "FleetStore",
    "Incoming",
    "Notification",
    "Outcome",
    "Signed",
    "alerts",
    "certificates",
    "claims",
    "commands",
    "default_site",
    "dossiers",
    "events",
    "kiosks",
    "login_throttle",
    "metadata",
    "operators",
    "parse_time",
    "queue_stats",
    "queue_tickets",
    "records",
    "revocations",
    "telemetry",
]
