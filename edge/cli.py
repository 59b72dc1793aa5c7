"""The `kiosk` command. Logging and signal handling are set up here and nowhere else."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

from edge import (
    __version__,
    cli_copy,
    cli_document,
    cli_identity,
    cli_provision,
    cli_services,
    cli_staff,
    cli_ui,
)
from edge import config as cfg
from edge.errors import EXIT_BAD_INPUT, EXIT_OK, BadInput, ConfigError, KioskError

logger = logging.getLogger("edge.cli")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (or one JSON object) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        _fail(BadInput(f"{message} (see '{self.prog} --help')"), as_json="--json" in sys.argv)


def _fail(err: KioskError, *, as_json: bool) -> NoReturn:
    if as_json:
        body: dict[str, Any] = {"code": err.code, "message": str(err)}
        problems = getattr(err, "problems", None)
        if problems:
            body["problems"] = [p.as_dict() for p in problems]
        for extra in ("rule", "message_vi"):  # CCCD refusals: which rule, and the citizen's text
            if getattr(err, extra, None):
                body[extra] = getattr(err, extra)
        print(json.dumps({"error": body}, ensure_ascii=False), file=sys.stderr)
    else:
        print(f"kiosk: {err}", file=sys.stderr)
    sys.exit(err.exit_code)


def _emit(data: Any, text: str, *, as_json: bool) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2) if as_json else text)


def build_parser() -> argparse.ArgumentParser:
    def options(suppress: bool) -> argparse.ArgumentParser:
        # The same options before or after the subcommand; the subcommand's copies must not
        # reset what was given before it, hence SUPPRESS there.
        common = argparse.ArgumentParser(add_help=False)
        default = {"default": argparse.SUPPRESS} if suppress else {}
        common.add_argument(
            "--config",
            type=Path,
            **default,
            help=f"config file (default: $KIOSK_CONFIG or {cfg.DEFAULT_PATH})",
        )
        common.add_argument(
            "--simulate",
            action="store_true",
            **default,
            help="every hardware part simulated (camera plays scenes, mock GPIO, printer to files)",
        )
        common.add_argument(
            "--json", action="store_true", **default, help="machine-readable output"
        )
        common.add_argument(
            "--verbose",
            "-v",
            action="store_true",
            **default,
            help="log what happens to stderr (commands other than run)",
        )
        return common

    common = options(suppress=True)
    parser = _Parser(
        prog="kiosk",
        description="kiosk-edge: the public-service kiosk daemon.",
        parents=[options(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"kiosk-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("run", parents=[common], help="run the kiosk daemon")

    config = sub.add_parser("config", parents=[common], help="check or show the configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, parser_class=_Parser)
    check = config_sub.add_parser("check", parents=[common], help="validate a config file")
    check.add_argument("path", nargs="?", type=Path, help="file to check (default: --config)")
    config_sub.add_parser("show", parents=[common], help="print the effective configuration")

    selftest = sub.add_parser("selftest", parents=[common], help="check every configured part")
    selftest.add_argument(
        "--print", dest="print_test", action="store_true", help="also print a test page"
    )
    selftest.add_argument(
        "--local", action="store_true", help="test the parts directly even if the daemon is running"
    )

    printer = sub.add_parser("print", parents=[common], help="printer jobs")
    printer_sub = printer.add_subparsers(dest="print_command", required=True, parser_class=_Parser)
    printer_sub.add_parser("test", parents=[common], help="print a test page")
    jobs = printer_sub.add_parser("jobs", parents=[common], help="list recent print jobs")
    jobs.add_argument("--status", choices=["pending", "printed", "failed"])
    reprint = printer_sub.add_parser(
        "reprint", parents=[common], help="reprint a kept job (from this device, audited as cli)"
    )
    reprint.add_argument("job_id")
    cli_identity.add_parsers(sub, common, _Parser)
    cli_document.add_parsers(sub, common, _Parser)
    cli_copy.add_parsers(sub, common, _Parser)
    cli_provision.add_parsers(sub, common, _Parser)
    cli_services.add_parsers(sub, common, _Parser)
    cli_ui.add_parsers(sub, common, _Parser)
    cli_staff.add_parsers(sub, common, _Parser)

    fleet = sub.add_parser("fleet", parents=[common], help="fleet reporting (MQTT)")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", required=True, parser_class=_Parser)
    fleet_sub.add_parser("status", parents=[common], help="connection state and outbox depth")
    fleet_sub.add_parser("send-test", parents=[common], help="queue a test event for central")
    return parser


def load_config(args: argparse.Namespace) -> cfg.Config:
    return resolve_config(args)[0]


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


# --- talking to a running daemon -------------------------------------------------------


def _daemon(config: cfg.Config, method: str, path: str, timeout: float = 30.0) -> Any | None:
    """The daemon's JSON answer, or None when no daemon answers on the configured port."""
    from edge.localapi import token_headers

    url = f"http://{config.web.host}:{config.web.port}{path}"
    # The daemon's per-boot token (readable by its own user): calls that change state need it.
    headers = token_headers(config.storage.state_dir)
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        return json.loads(err.read() or b"{}")
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None


def _daemon_running(config: cfg.Config) -> bool:
    answer = _daemon(config, "GET", "/api/health", timeout=1.0)
    return bool(answer and answer.get("kiosk_id") == config.kiosk.id)


class _LocalParts:
    """Store, key and printer opened by the CLI itself when no daemon is running."""

    def __init__(self, config: cfg.Config) -> None:
        from edge.adapters import build_printer
        from edge.events import EventBus
        from edge.printing import PrintQueue
        from edge.store import DataKey, Store

        config.storage.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key = DataKey.load_or_create(config.storage.data_key_path)
        self.store = Store(config.storage.db_path)
        self.store.open()
        self.bus = EventBus()
        self.transport = build_printer(config)
        self.printer = PrintQueue.from_config(
            self.transport, config, store=self.store, key=self.key, bus=self.bus
        )

    def close(self) -> None:
        self.store.close()


# --- commands ---------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, config: cfg.Config, config_path: Path | None) -> int:
    from edge import logs
    from edge.app import App

    logs.setup(config.logging.level, config.logging.format)
    app = App(config, config_path=config_path)
    stopped = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        logger.info("signal received, stopping", extra={"signal": signal.Signals(signum).name})
        app.stop_event.set()
        # A clean stop has stop_timeout_s; past that, exit anyway so systemd is not kept waiting.
        timer = threading.Timer(config.daemon.stop_timeout_s + 0.5, _hard_exit, args=(stopped,))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        app.run()
    finally:
        stopped.set()
    return app.exit_code


def _hard_exit(stopped: threading.Event) -> None:
    if not stopped.is_set():
        logger.error("clean stop took too long; exiting now")
        logging.shutdown()
        os._exit(1)


def cmd_config(args: argparse.Namespace) -> int:
    if args.config_command == "check":
        path = args.path or args.config or Path(os.environ.get("KIOSK_CONFIG", cfg.DEFAULT_PATH))
        config = cfg.load(path)
        _emit(
            {"ok": True, "path": str(path), "kiosk_id": config.kiosk.id, "digest": config.digest()},
            f"{path}: ok (kiosk {config.kiosk.id}, digest {config.digest()})",
            as_json=args.json,
        )
        return EXIT_OK
    config = load_config(args)
    data = config.model_dump(mode="json")
    _emit(data, json.dumps(data, ensure_ascii=False, indent=2), as_json=args.json)
    return EXIT_OK


def cmd_selftest(args: argparse.Namespace, config: cfg.Config) -> int:
    from edge.selftest import Check, exit_code, render_table

    if not args.local and _daemon_running(config):
        answer = _daemon(config, "GET", f"/api/selftest?print={int(args.print_test)}")
        if answer is None or "checks" not in answer:
            raise KioskError("the running daemon did not answer the self-test")
        checks = [Check(**c) for c in answer["checks"]]
        source = "daemon"
    else:
        checks = _local_selftest(config, print_test=args.print_test)
        source = "local"
    code = exit_code(checks)
    _emit(
        {
            "source": source,
            "kiosk_id": config.kiosk.id,
            "exit_code": code,
            "checks": [c.as_dict() for c in checks],
        },
        f"self-test of {config.kiosk.id} ({source})\n{render_table(checks)}",
        as_json=args.json,
    )
    return code


def _local_selftest(config: cfg.Config, *, print_test: bool) -> list[Any]:
    from edge.adapters import build_camera
    from edge.controls import Controls, SimulatedPins
    from edge.selftest import (
        Check,
        check_camera,
        check_controls,
        check_key,
        check_printer,
        check_runtime_files,
        check_storage,
    )

    checks: list[Check] = [check_camera(build_camera(config.camera))]
    try:
        parts = _LocalParts(config)
    except KioskError as err:
        checks.append(Check("storage", "fail", str(err)))
        checks.append(check_key(config.storage.data_key_path))
    else:
        try:
            checks.append(check_printer(parts.printer, config, print_test=print_test))
            checks.append(check_storage(parts.store, config))
            checks.append(check_key(config.storage.data_key_path))
        finally:
            parts.close()
    controls = Controls(
        buttons=config.buttons, tamper=config.tamper, led=config.led, bus=_NullBus()
    )
    controls.start()
    try:
        if config.tamper.type == "simulated":
            SimulatedPins(controls).set_door("closed")
        checks[1:1] = check_controls(controls)
    finally:
        controls.stop()
    checks.extend(check_runtime_files(config.models.dir))
    return checks


class _NullBus:
    def post(self, event: Any) -> None:
        pass


def cmd_print(args: argparse.Namespace, config: cfg.Config) -> int:
    daemon = _daemon_running(config)
    if args.print_command == "jobs":
        query = f"?status={args.status}" if args.status else ""
        if daemon:
            jobs = _daemon(config, "GET", f"/api/printer/jobs{query}")["jobs"]
        else:
            parts = _LocalParts(config)
            try:
                jobs = parts.printer.jobs(status=args.status)
            finally:
                parts.close()
        text = "\n".join(
            f"{j['id']}  {j['status']:<8} {j['kind']:<8} {j['title']}"
            + (f"  ({j['last_error']})" if j["last_error"] else "")
            + ("" if j.get("kept", True) else "  [erased, cannot be reprinted]")
            for j in jobs
        )
        _emit({"jobs": jobs}, text or "no print jobs", as_json=args.json)
        return EXIT_OK
    if daemon and args.print_command == "test":
        outcome = _daemon(config, "POST", "/api/printer/test")
        if outcome is None:
            raise KioskError("the daemon stopped answering")
        if isinstance(outcome.get("error"), dict):  # a refused request, not a failed print
            error = outcome["error"]
            raise (BadInput if error["code"] == "bad_input" else KioskError)(error["message"])
    else:
        parts = _LocalParts(config)
        try:
            if args.print_command == "test":
                from edge.printing import print_test_page

                outcome = print_test_page(parts.printer, config).as_dict()
            else:  # the device's own operator (root or the kiosk user), audited as "cli"
                from edge.store.staff import CLI

                outcome = parts.printer.reprint(args.job_id, actor=CLI).as_dict()
        finally:
            parts.close()
    text = (
        f"printed (job {outcome['job_id']})"
        if outcome["printed"]
        else f"not printed, kept for reprint (job {outcome['job_id']}): {outcome['error']}"
    )
    _emit(outcome, text, as_json=args.json)
    return EXIT_OK if outcome["printed"] else 3


def cmd_fleet(args: argparse.Namespace, config: cfg.Config) -> int:
    """Asks the running daemon; without one, reads (or adds to) the outbox directly."""
    if _daemon_running(config):
        if args.fleet_command == "status":
            status = _daemon(config, "GET", "/api/status")
            data = {
                "daemon": True,
                "fleet": status["fleet"],
                "outbox": status["parts"]["storage"]["outbox"],
            }
        else:
            data = _daemon(config, "POST", "/api/fleet/test-event")
            if data is None or isinstance(data.get("error"), dict):
                raise KioskError("the daemon did not queue the test event")
    else:
        from edge.fleet import queue_event
        from edge.store.outbox import Outbox

        parts = _LocalParts(config)
        try:
            outbox = Outbox(parts.store, parts.key)
            if args.fleet_command == "send-test":
                message = queue_event(outbox, config.kiosk.id, "fleet.test", "info", {"by": "cli"})
                data = {"queued": message.id, "seq": message.seq, "daemon": False}
            else:
                data = {
                    "daemon": False,
                    "fleet": {"enabled": config.mqtt.type == "broker"},
                    "outbox": outbox.depth(),
                }
        finally:
            parts.close()
    if args.fleet_command == "status":
        fleet = data["fleet"]
        state = (
            ("connected" if fleet.get("connected") else "not connected")
            if fleet.get("enabled", True)
            else "off"
        )
        text = (
            f"fleet: {state}"
            + ("" if data["daemon"] else " (daemon not running)")
            + f"\noutbox: {data['outbox']}"
        )
    else:
        text = f"test event queued ({data['queued']})"
    _emit(data, text, as_json=args.json)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "run":
        # The daemon logs to stdout for journald; one-shot commands keep stdout for results.
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.CRITICAL,
            stream=sys.stderr,
            format="%(levelname)s %(name)s: %(message)s",
        )
    try:
        if args.command == "config":
            return cmd_config(args)
        emit = lambda data, text: _emit(data, text, as_json=args.json)  # noqa: E731
        if args.command in ("id", "face"):  # work on files; no kiosk config needed
            return cli_identity.run(args, emit)
        if args.command in ("doc", "ocr"):
            return cli_document.run(args, emit)
        if args.command == "receipt":  # a sample job to a file; no kiosk config needed
            return cli_copy.run(args, None, emit)
        if args.command == "ui":  # hashes a PIN; no kiosk config needed
            return cli_ui.run(args, emit)
        if args.command in cli_provision.COMMANDS:  # a blank kiosk has no valid config yet
            return cli_provision.run(args, emit)
        config, config_path = resolve_config(args)
        if args.command == "run":
            return cmd_run(args, config, config_path)
        if args.command == "selftest":
            return cmd_selftest(args, config)
        if args.command == "print":
            return cmd_print(args, config)
        if args.command == "fleet":
            return cmd_fleet(args, config)
        if args.command == "copy":
            return cli_copy.run(args, config, emit)
        if args.command in cli_services.COMMANDS:
            return cli_services.run(args, emit, config)
        if args.command in cli_staff.COMMANDS:
            return cli_staff.run(args, emit, config)
    except ConfigError as err:
        _fail(err, as_json=args.json)
    except KioskError as err:
        _fail(err, as_json=args.json)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (`kiosk ... | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    parser.error(f"unknown command {args.command!r}")
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
