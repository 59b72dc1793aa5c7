"""What every `kiosk` command is handed: the config, emit, the running daemon, local parts."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

from edge import config as cfg
from edge.errors import KioskError


def emit(data: Any, text: str, *, as_json: bool) -> None:
    """A command's result on stdout: the data as JSON, or the text for people."""
    print(json.dumps(data, ensure_ascii=False, indent=2) if as_json else text)


def resolve_config(args: argparse.Namespace) -> tuple[cfg.Config, Path | None]:
    """The config and the file it came from (None for the built-in simulation config)."""
    env_path = os.environ.get("KIOSK_CONFIG")
    explicit = args.config or (Path(env_path) if env_path else None)
    if explicit is None and args.simulate and not cfg.DEFAULT_PATH.exists():
        state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        env = {"KIOSK_STORAGE__STATE_DIR": json.dumps(str(state / "kiosk-edge-sim")), **os.environ}
        return cfg.load(cfg.SIMULATION_CONFIG, env=env), None
    path = explicit or cfg.DEFAULT_PATH
    config = cfg.load(path)
    return (config.simulated() if args.simulate else config), path


def config_path(args: argparse.Namespace) -> Path:
    """The config file named by --config, $KIOSK_CONFIG or the default (it may not exist yet)."""
    env = os.environ.get("KIOSK_CONFIG")
    return args.config or (Path(env) if env else cfg.DEFAULT_PATH)


class DaemonRefused(KioskError):
    """The running daemon answered, and said no; its error body says why."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("message_en") or body.get("message") or "the daemon refused")
        self.code = body.get("code", "error")
        self.message_vi = body.get("message_vi")
        self.exit_code = 2 if self.code in ("invalid_dossier_code", "rate_limited") else 1


class Daemon:
    """The daemon of this config on its local web API, if one is running."""

    def __init__(self, config: cfg.Config) -> None:
        self.config = config

    def running(self) -> bool:
        """Whether this kiosk's daemon (not some other service on the port) answers."""
        answer = self.request("GET", "/api/health", timeout=1.0)
        return bool(answer and answer.get("kiosk_id") == self.config.kiosk.id)

    def request(
        self, method: str, path: str, *, timeout: float = 30.0, refusal_raises: bool = False
    ) -> Any | None:
        """The daemon's JSON answer, or None when no daemon answers on the configured port.

        An HTTP error's JSON body is the answer too, unless refusal_raises: then it is raised
        as DaemonRefused."""
        from edge.localapi import token_headers

        url = f"http://{self.config.web.host}:{self.config.web.port}{path}"
        # The daemon's per-boot token (readable by its own user): calls that change state need it.
        headers = token_headers(self.config.storage.state_dir)
        request = urllib.request.Request(url, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            try:
                body = json.loads(err.read() or b"{}")
            except ValueError:  # not JSON: some other server on the port, not the daemon
                return None
            if refusal_raises:
                raise DaemonRefused(body.get("error", {})) from None
            return body
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return None


class LocalParts:
    """Store, key, printer (and the services over them) opened by the CLI itself, when no
    daemon is running or the command works on the database directly."""

    def __init__(self, config: cfg.Config) -> None:
        self.config = config

    def open(self) -> LocalParts:
        from edge.adapters import build_printer
        from edge.events import EventBus
        from edge.printing import PrintQueue
        from edge.store import DataKey, Store

        config = self.config
        config.storage.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key = DataKey.load_or_create(config.storage.data_key_path)
        self.store = Store(config.storage.db_path)
        self.store.open()
        self.bus = EventBus()
        self.transport = build_printer(config)
        self.printer = PrintQueue.from_config(
            self.transport, config, store=self.store, key=self.key, bus=self.bus
        )
        return self

    @cached_property
    def outbox(self) -> Any:
        from edge.store.outbox import Outbox

        return Outbox(self.store, self.key)

    @cached_property
    def services(self) -> Any:
        """The citizen services (tickets, dossiers, guide) over these parts."""
        from edge.services.bundle import build_services

        services = build_services(
            self.config, store=self.store, key=self.key, outbox=self.outbox, printer=self.printer
        )
        services.tickets.requeue_unreported()
        return services

    def close(self) -> None:
        self.store.close()


class Context:
    """One command's view of the kiosk; parts are opened on first use and closed by close()."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.as_json = bool(getattr(args, "json", False))
        self._parts: LocalParts | None = None

    def emit(self, data: Any, text: str) -> None:
        emit(data, text, as_json=self.as_json)

    @cached_property
    def resolved(self) -> tuple[cfg.Config, Path | None]:
        return resolve_config(self.args)

    @property
    def config(self) -> cfg.Config:
        return self.resolved[0]

    @property
    def config_path(self) -> Path | None:
        return self.resolved[1]

    @cached_property
    def daemon(self) -> Daemon:
        return Daemon(self.config)

    @property
    def parts(self) -> LocalParts:
        if self._parts is None:
            self._parts = LocalParts(self.config).open()
        return self._parts

    def close(self) -> None:
        if self._parts is not None:
            self._parts.close()
            self._parts = None

    def __enter__(self) -> Context:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
