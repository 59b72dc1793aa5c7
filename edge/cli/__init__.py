"""The `kiosk` command. Logging and signal handling are set up here and nowhere else."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

from edge import __version__
from edge import config as cfg
from edge.cli import (
    copy,
    document,
    fleet,
    identity,
    printer,
    provision,
    selftest,
    services,
    settings,
    staff,
    ui,
)
from edge.cli.context import Context
from edge.errors import BadInput
from protocol.cli import report, run_command

logger = logging.getLogger("edge.cli")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (or one JSON object) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        err = BadInput(f"{message} (see '{self.prog} --help')")
        sys.exit(report("kiosk", err, as_json="--json" in sys.argv))


def build_parser() -> argparse.ArgumentParser:
    def options(suppress: bool) -> Parser:
        # The same options before or after the subcommand; the subcommand's copies must not
        # reset what was given before it, hence SUPPRESS there.
        common = Parser(add_help=False)  # a parent only: its options are copied, it never parses
        default: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
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
    parser = Parser(
        prog="kiosk",
        description="kiosk-edge: the public-service kiosk daemon.",
        parents=[options(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"kiosk-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser("run", parents=[common], help="run the kiosk daemon")
    run.set_defaults(handler=cmd_run)
    # In the order `kiosk --help` lists them; each sets its handler(args, ctx).
    groups = (settings, selftest, printer, identity, document, copy, provision, services, ui)
    for group in (*groups, staff, fleet):
        group.add_parsers(sub, common, Parser)
    return parser


def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    from edge import logs
    from edge.app import App

    config = ctx.config
    logs.setup(config.logging.level, config.logging.format)
    app = App(config, config_path=ctx.config_path)
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "run":
        # The daemon logs to stdout for journald; one-shot commands keep stdout for results.
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.CRITICAL,
            stream=sys.stderr,
            format="%(levelname)s %(name)s: %(message)s",
        )

    def command() -> int:
        with Context(args) as ctx:
            return args.handler(args, ctx)

    return run_command("kiosk", command, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
