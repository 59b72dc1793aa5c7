"""The remote commands this kiosk accepts, over the parts of the daemon they act on."""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from edge import config as cfg
from edge.fleet.client import FleetClient
from edge.fleet.commands import BadArgs
from edge.fleet.messages import queue_event
from edge.logs import recent_log_lines
from edge.printing import PrintOutcome
from edge.remote_config import apply_config_change
from edge.services.catalog import CatalogService
from edge.store.outbox import Outbox
from protocol.messages import Severity

logger = logging.getLogger(__name__)

MAX_CATALOG_BYTES = 4 * 2**20  # an unpacked update-catalog document


class CommandTarget(Protocol):
    """What the commands act on (edge.app.App)."""

    config: cfg.Config
    config_path: Any

    @property
    def fleet(self) -> FleetClient | None: ...
    @property
    def outbox(self) -> Outbox | None: ...
    @property
    def copies(self) -> Any: ...  # edge.copies.issue.CopyService
    @property
    def catalog(self) -> CatalogService | None: ...
    @property
    def store(self) -> Any: ...  # edge.store.Store

    def request_restart(self, delay_s: float = 1.0) -> None: ...

    def print_test_page(self) -> PrintOutcome: ...

    def set_locked(self, locked: bool) -> None: ...


def fleet_commands(app: CommandTarget) -> dict[str, Any]:
    """The remote commands this kiosk accepts (signed by an operator; see docs/fleet.md)."""

    def restart(args: dict[str, Any]) -> dict[str, Any]:
        app.request_restart()
        return {"restarting": True}

    def print_test(args: dict[str, Any]) -> dict[str, Any]:
        outcome = app.print_test_page()
        return outcome.as_dict()

    def lock(args: dict[str, Any]) -> dict[str, Any]:
        app.set_locked(True)
        return {"locked": True}

    def unlock(args: dict[str, Any]) -> dict[str, Any]:
        app.set_locked(False)
        return {"locked": False}

    def collect_logs(args: dict[str, Any]) -> dict[str, Any]:
        lines = int(args.get("lines", 200))
        if not 1 <= lines <= 1000:
            raise BadArgs("lines must be between 1 and 1000")
        return {"lines": recent_log_lines(lines)}

    def set_config(args: dict[str, Any]) -> dict[str, Any]:
        return apply_config_change(app, args)

    def rotate_certificate(args: dict[str, Any]) -> dict[str, Any]:
        """No args: a new key on the device and its CSR for central to sign.
        {"certificate": PEM}: the signed certificate, checked, installed, then a restart."""
        from edge.fleet.certificates import (
            CertificateRefused,
            install_certificate,
            start_rotation,
        )

        m, state_dir = app.config.mqtt, app.config.storage.state_dir
        if "certificate" not in args:
            return {"csr": start_rotation(state_dir, app.config.kiosk.id)}
        if not (m.ca_file and m.cert_file and m.key_file):
            raise BadArgs("this kiosk has no TLS client files configured")
        if not isinstance(args["certificate"], str):
            raise BadArgs("certificate must be a PEM string")
        try:
            result = install_certificate(
                args["certificate"],
                state_dir=state_dir,
                kiosk_id=app.config.kiosk.id,
                ca_file=m.ca_file,
                cert_file=m.cert_file,
                key_file=m.key_file,
            )
        except CertificateRefused as err:
            raise BadArgs(str(err)) from err
        app.request_restart()  # reconnect with the new identity
        return {**result, "restarting": True}

    def update_revocations(args: dict[str, Any]) -> dict[str, Any]:
        """{"revocations": {"codes": [...], "certificates": [...]}}: central's list, replaced."""
        from edge.copies.verify import write_revocations

        if app.copies is None:
            raise BadArgs("e-copies are not running on this kiosk")
        try:
            return write_revocations(app.copies.paths.revocation_file, args.get("revocations"))
        except ValueError as err:
            raise BadArgs(str(err)) from err

    def update(args: dict[str, Any]) -> dict[str, Any]:
        """{"url": "https://..."} or {"path": "/abs/bundle.kup"}: fetched and verified in the
        background, then queued for kiosk-update.service (outcome: event update.queued or
        update.refused). The switch, health check and rollback happen outside the daemon."""
        from edge.errors import KioskError
        from provisioning.update import incoming_dir, queue_bundle

        sources = [args[k] for k in ("url", "path") if k in args]
        if len(sources) != 1 or not isinstance(sources[0], str) or set(args) - {"url", "path"}:
            raise BadArgs('args must be {"url": "https://..."} or {"path": "/absolute/file.kup"}')
        source = sources[0]
        if not (source.startswith("https://") or source.startswith("/")):
            raise BadArgs("url must be https://, path must be absolute")

        def fetch() -> None:
            try:
                queued = queue_bundle(
                    source, incoming=incoming_dir(app.config), keys_dir=app.config.update.keys_dir
                )
            except KioskError as err:
                logger.warning("update bundle refused: %s", err)
                _report(app, "update.refused", "warning", {"reason": str(err)})
            else:
                _report(app, "update.queued", "info", queued)

        threading.Thread(target=fetch, name="update-fetch", daemon=True).start()
        return {"accepted": True}

    def update_catalog(args: dict[str, Any]) -> dict[str, Any]:
        """{"catalog": {catalog/1}} or {"catalog_gzip_b64": str} installs a new catalog after
        validating it (the replaced one is kept); {"rollback": true} goes back to it."""
        import base64
        import binascii
        import json
        import zlib

        from edge.services.catalog import CatalogInvalid

        if app.catalog is None:
            raise BadArgs("the catalog service is not running")
        try:
            if args.get("rollback") is True and len(args) == 1:
                return app.catalog.rollback()
            if set(args) == {"catalog"} and isinstance(args["catalog"], dict):
                document = args["catalog"]
            elif set(args) == {"catalog_gzip_b64"} and isinstance(args["catalog_gzip_b64"], str):
                try:
                    packed = base64.b64decode(args["catalog_gzip_b64"], validate=True)
                    # Bounded: 64 KiB of gzip could otherwise inflate to gigabytes.
                    inflater = zlib.decompressobj(wbits=31)
                    raw = inflater.decompress(packed, MAX_CATALOG_BYTES)
                    if inflater.unconsumed_tail or not inflater.eof:
                        raise BadArgs(f"catalog larger than {MAX_CATALOG_BYTES} bytes or cut")
                    document = json.loads(raw.decode("utf-8"))
                except (binascii.Error, zlib.error, UnicodeDecodeError, ValueError) as err:
                    if isinstance(err, BadArgs):
                        raise
                    raise BadArgs(f"catalog_gzip_b64 is not gzip'd JSON: {err}") from err
            else:
                raise BadArgs(
                    'args must be {"catalog": {...}}, {"catalog_gzip_b64": "..."} or {"rollback": true}'
                )
            result = app.catalog.update(document)
        except CatalogInvalid as err:
            raise BadArgs(err.message_en[:900]) from err
        if app.fleet is not None:
            app.fleet.send_telemetry()  # central sees the new catalog version at once
        return result

    def set_staff(args: dict[str, Any]) -> dict[str, Any]:
        """{"accounts": [{name, pin_hash, role, disabled}]}: central's staff accounts, PINs as
        werkzeug hashes made centrally (never a PIN). Replaces every account central gave
        before, atomically and audited (edge/store/staff.py StaffAccounts.set_central)."""
        from edge.errors import BadInput
        from edge.store.staff import CENTRAL, StaffAccounts

        if set(args) != {"accounts"}:
            raise BadArgs('args must be {"accounts": [{"name", "pin_hash", "role", "disabled"}]}')
        try:
            return StaffAccounts(app.store).set_central(args["accounts"], actor=CENTRAL)
        except BadInput as err:
            raise BadArgs(str(err)) from err

    return {
        "update": update,
        "set-staff": set_staff,
        "restart": restart,
        "update-revocations": update_revocations,
        "print-test": print_test,
        "lock": lock,
        "unlock": unlock,
        "collect-logs": collect_logs,
        "set-config": set_config,
        "rotate-certificate": rotate_certificate,
        "update-catalog": update_catalog,
    }


def _report(app: CommandTarget, kind: str, severity: Severity, detail: dict[str, Any]) -> None:
    """An event for central from a background job (the fleet client's outbox path)."""
    if app.fleet is not None:
        app.fleet.report_event(kind, severity, detail)
    elif app.outbox is not None:
        queue_event(app.outbox, app.config.kiosk.id, kind, severity, detail)
