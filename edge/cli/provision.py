"""`kiosk provision`, `kiosk factory-reset` and `kiosk update`: the technician's and the updater's
commands (the work is in provisioning/)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from edge import config as cfg
from edge.cli.context import Context, config_path
from edge.errors import EXIT_FAILED, EXIT_OK, BadInput


def add_parsers(sub: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    p = sub.add_parser(
        "provision",
        parents=[common],
        help="provision this kiosk: identity, device key, enrolment, trust, self-test, report",
        description="Interactive on a terminal; every answer can also be given as a flag or "
        "in --answers FILE (TOML/JSON with the same names). Run it again to resume.",
    )
    # A blank kiosk has no valid config yet: these commands read it themselves, if at all.
    p.set_defaults(handler=run)
    p.add_argument("--status", action="store_true", help="show what is done and the certificate")
    p.add_argument("--answers", type=Path, help="answers file (TOML or JSON)")
    p.add_argument("--yes", "-y", action="store_true", help="never prompt (defaults or fail)")
    p.add_argument("--reprovision", action="store_true", help="start over with a new device key")
    p.add_argument("--kiosk-id")
    p.add_argument("--site")
    p.add_argument("--location")
    p.add_argument("--paper-width", dest="paper_width_mm", type=int, choices=[58, 80])
    p.add_argument(
        "--pin",
        action="append",
        default=[],
        metavar="PART=BCM",
        help="GPIO pin: back, next, ok, cancel, help, tamper, led (repeatable)",
    )
    p.add_argument("--enrol", choices=["offline", "online"])
    p.add_argument("--csr-out", type=Path, help="offline: where to write the CSR (USB stick)")
    p.add_argument("--cert-in", type=Path, help="offline: the certificate signed by kiosk-ca")
    p.add_argument("--ca-file", type=Path, help="the fleet CA certificate (PEM)")
    p.add_argument("--claim", help="online: the one-time claim token from central")
    p.add_argument("--provision-host", help="online: enrolment listener host (default: broker)")
    p.add_argument("--provision-port", type=int, help="online: enrolment listener port (8884)")
    p.add_argument("--serial", help="device serial (default: the Pi's serial number)")
    p.add_argument("--operators", dest="operators_dir", type=Path, help="operator keys (*.pem)")
    p.add_argument("--broker-host")
    p.add_argument("--broker-port", type=int)
    p.add_argument("--enrol-timeout", dest="enrol_timeout_s", type=float)
    p.add_argument("--skip-selftest", action="store_true")
    p.add_argument(
        "--press-timeout",
        dest="press_timeout_s",
        type=float,
        help="self-test: seconds to wait for each button press or door move (30)",
    )
    p.add_argument(
        "--auto-press",
        action="store_true",
        help="simulation: press the simulated buttons and door for the technician",
    )

    r = sub.add_parser(
        "factory-reset",
        parents=[common],
        help="securely remove keys, personal data and the database (asks to confirm)",
    )
    r.set_defaults(handler=run)
    r.add_argument("--confirm", metavar="KIOSK_ID", help="confirm without a prompt")

    u = sub.add_parser("update", parents=[common], help="signed A/B software updates")
    u.set_defaults(handler=run)
    u_sub = u.add_subparsers(dest="update_command", required=True, parser_class=parser_class)
    apply = u_sub.add_parser("apply", parents=[common], help="verify, switch, check, or roll back")
    apply.add_argument("bundle", type=Path)
    check = u_sub.add_parser(
        "check", parents=[common], help="recover, then apply a bundle the fleet command queued"
    )
    recover = u_sub.add_parser(
        "recover", parents=[common], help="after a crash: roll back an uncommitted switch"
    )
    for q in (apply, check, recover):
        q.add_argument("--root", type=Path, help="install root (default [update] root)")
        q.add_argument("--keys", dest="keys_dir", type=Path, help="trusted bundle keys dir")
        q.add_argument("--health-url")
        q.add_argument("--timeout", dest="health_timeout_s", type=float)
        q.add_argument("--restart-command", help="shell words, e.g. 'systemctl restart kiosk-edge'")
    recover.add_argument(
        "--no-restart", action="store_true", help="at boot: only put 'current' back"
    )
    status = u_sub.add_parser("status", parents=[common], help="releases, current, journal")
    status.add_argument("--root", type=Path)
    make = u_sub.add_parser("make-bundle", parents=[common], help="center: pack and sign")
    make.add_argument("source", type=Path, help="the release tree to ship")
    make.add_argument("--version", dest="bundle_version", required=True)
    make.add_argument("--key", type=Path, required=True, help="signing key (PEM, EC P-256)")
    make.add_argument("--key-id", required=True, help="name of the key file on kiosks")
    make.add_argument("--out", type=Path, required=True)
    make.add_argument("--notes", default="")


class ConsoleTechnician:
    """Prompts on the terminal (stderr), answers from stdin; --yes or no TTY: never asks."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def ask(self, question: str, default: str | None = None) -> str:
        if not self.interactive:
            if default is None:
                raise BadInput(f"no answer for: {question}")
            return default
        hint = f" [{default}]" if default not in (None, "") else ""
        print(f"{question}{hint}: ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            raise BadInput(f"no answer for: {question}")
        return line.strip() or (default or "")

    def confirm(self, question: str, default: bool = True) -> bool:
        answer = self.ask(f"{question} (c/k, y/n)", "c" if default else "k").lower()
        return answer[:1] in ("c", "y")


def run(args: argparse.Namespace, ctx: Context) -> int:
    emit = ctx.emit
    if args.command == "provision":
        return _provision(args, emit)
    if args.command == "factory-reset":
        return _factory_reset(args, emit)
    return _update(args, emit)


def _options(args: argparse.Namespace) -> Any:
    from provisioning.provision import PIN_NAMES, Options

    values: dict[str, Any] = Options.from_file(args.answers) if args.answers else {}
    pins = dict(values.pop("pins", {}) or {})
    for item in args.pin:
        name, _, number = item.partition("=")
        if name not in PIN_NAMES or not number.isdigit():
            raise BadInput(f"--pin {item!r}: expected PART=BCM, PART one of {', '.join(PIN_NAMES)}")
        pins[name] = int(number)
    for name in Options.__dataclass_fields__:
        given = getattr(args, name, None)
        if given not in (None, False):
            values[name] = given
    values["simulate"] = bool(args.simulate)
    return Options(**values, pins=pins)


def _provision(args: argparse.Namespace, emit: Any) -> int:
    from provisioning.provision import Provisioner, Waiting

    ui = ConsoleTechnician(sys.stdin.isatty() and not args.yes and not args.json)
    path = config_path(args)
    if args.status and not path.exists():
        emit(
            {"provisioned": False, "config": str(path), "next_step": "identity"},
            f"not provisioned: no {path} yet (run 'kiosk provision')",
        )
        return EXIT_OK
    provisioner = Provisioner(path, _options(args), ui)
    if args.status:
        status = provisioner.status()
        cert = status["certificate"] or {}
        lines = [
            f"kiosk {status['kiosk_id']} ({status['site'] or '-'}): "
            + ("provisioned" if status["provisioned"] else f"next step: {status['next_step']}"),
            *(f"  {step:<11} {done or '-'}" for step, done in status["steps"].items()),
            f"  certificate: {cert.get('subject', 'none')} serial {cert.get('serial', '-')} "
            f"until {cert.get('not_after', '-')}",
        ]
        if cert.get("warning"):
            lines.append(f"  ! {cert['warning']}")
        emit(status, "\n".join(lines))
        return EXIT_OK
    try:
        summary = provisioner.run()
    except Waiting as paused:
        emit({"waiting": True, "message": str(paused), **provisioner.status()}, str(paused))
        return EXIT_OK
    warning = (summary.get("certificate") or {}).get("warning")
    emit(
        summary,
        f"Ki-ốt {summary['kiosk_id']} đã sẵn sàng / provisioned: broker {summary['broker']}, "
        f"self-test {summary['selftest']}" + (f"\n! {warning}" if warning else ""),
    )
    return EXIT_OK


def _factory_reset(args: argparse.Namespace, emit: Any) -> int:
    from provisioning.provision import factory_reset

    path = config_path(args)
    config = cfg.load(path)
    kiosk_id = config.kiosk.id
    confirm = args.confirm
    if confirm is None:
        if not sys.stdin.isatty():
            raise BadInput("factory-reset needs --confirm KIOSK_ID when not run on a terminal")
        print(
            f"Xóa vĩnh viễn khóa, dữ liệu cá nhân và cơ sở dữ liệu của ki-ốt {kiosk_id}. "
            f"Gõ mã ki-ốt để xác nhận / type the kiosk id to erase everything: ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        confirm = sys.stdin.readline().strip()
    if confirm != kiosk_id:
        raise BadInput(
            f"Chưa xóa gì: mã xác nhận không khớp {kiosk_id} / nothing erased: confirmation "
            "does not match the kiosk id"
        )
    result = factory_reset(config, path)
    emit(
        result, f"Đã khôi phục cài đặt gốc / factory reset: {len(result['removed'])} items removed"
    )
    return EXIT_OK


def _update(args: argparse.Namespace, emit: Any) -> int:
    from provisioning import update

    if args.update_command == "make-bundle":
        manifest = update.make_bundle(
            args.source,
            args.out,
            version=args.bundle_version,
            key_file=args.key,
            key_id=args.key_id,
            notes=args.notes,
        )
        emit(
            manifest,
            f"bundle {args.out}: {manifest['version']} ({manifest['payload_sha256'][:12]})",
        )
        return EXIT_OK
    config = cfg.load(config_path(args))
    restart = getattr(args, "restart_command", None)
    installer = update.Installer.from_config(
        config,
        root=args.root,
        keys_dir=getattr(args, "keys_dir", None),
        health_url=getattr(args, "health_url", None),
        health_timeout_s=getattr(args, "health_timeout_s", None),
        restart_command=shlex.split(restart) if restart else None,
    )
    if args.update_command == "status":
        status = installer.status()
        emit(
            status,
            f"current {status['current']}, previous {status['previous']}, "
            f"last: {status['journal'].get('phase')}",
        )
        return EXIT_OK
    if args.update_command == "recover":
        result = installer.recover(restart=not args.no_restart)
        emit(
            result,
            f"current {result['current']}" + (" (rolled back)" if result["recovered"] else ""),
        )
        return EXIT_OK
    if args.update_command == "check":
        installer.recover()
        queued = queued_bundle(config)
        if queued is None:
            emit({"status": "nothing_queued"}, "no update queued")
            return EXIT_OK
        bundle = queued
    else:
        bundle = args.bundle
    try:
        result = installer.apply(bundle)
    finally:
        if args.update_command == "check":
            bundle.unlink(missing_ok=True)
    text = {
        "committed": f"updated to {result.get('release')}",
        "already_current": f"{result.get('release')} is already installed",
        "rolled_back": f"update {result.get('rejected')} was not healthy ({result.get('reason')}); "
        f"rolled back to {result.get('release')}",
    }[result["status"]]
    emit(result, text)
    return EXIT_FAILED if result["status"] == "rolled_back" else EXIT_OK


def queued_bundle(config: cfg.Config) -> Path | None:
    from provisioning.update import incoming_dir

    path = incoming_dir(config) / "queued.kup"
    return path if path.exists() else None
