"""What the web UI may use of the daemon: the façade edge.app.App fills, and nothing else."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from edge import config as cfg
from edge.camera import CameraFeed
from edge.controls import SimulatedPins
from edge.events import EventBus
from edge.fleet.client import FleetClient
from edge.ports.speech import Speech
from edge.printing import PrintOutcome, PrintQueue
from edge.selftest import Check
from edge.services.bundle import Services
from edge.services.catalog import CatalogService
from edge.services.dossier import DossierService
from edge.services.post import PostService
from edge.services.tickets import TicketService
from edge.store import DataKey, Store
from edge.store.outbox import Outbox

if TYPE_CHECKING:  # the e-copy stack (pyHanko) loads only when the daemon starts it
    from edge.copies.issue import CopyService


@runtime_checkable
class Kiosk(Protocol):
    """The running kiosk as the screens, /api and /live see it. Parts are read-only (edge.app
    builds them all at once); None is allowed here so test doubles can leave a part out."""

    config: cfg.Config
    ready: bool
    locked: bool
    bus: EventBus

    @property
    def camera(self) -> CameraFeed | None: ...
    @property
    def printer(self) -> PrintQueue | None: ...
    @property
    def store(self) -> Store | None: ...
    @property
    def key(self) -> DataKey | None: ...
    @property
    def outbox(self) -> Outbox | None: ...
    @property
    def fleet(self) -> FleetClient | None: ...
    @property
    def sim_pins(
        self,
    ) -> SimulatedPins | None: ...  # simulation only: the developer panel's buttons and door
    # The citizen services (docs/services.md).
    @property
    def services(self) -> Services | None: ...
    @property
    def copies(self) -> CopyService | None: ...
    @property
    def tickets(self) -> TicketService | None: ...
    @property
    def dossiers(self) -> DossierService | None: ...
    @property
    def catalog(self) -> CatalogService | None: ...
    @property
    def post(self) -> PostService | None: ...
    @property
    def speech(self) -> Speech | None: ...  # spoken guidance (edge/ports/speech.py)

    def status(self) -> dict[str, Any]: ...

    def selftest(self, *, print_test: bool = False) -> list[Check]: ...

    def print_test_page(self) -> PrintOutcome: ...

    def set_locked(self, locked: bool) -> None: ...
