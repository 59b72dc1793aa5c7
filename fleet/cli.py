"""`kiosk-fleet`: run the central console and manage operators, sites, tokens, dossiers."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from protocol.cli import run_command
from protocol.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, BadInput, KioskError

logger = logging.getLogger("fleet")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiosk-fleet", description=__doc__)
    parser.add_argument("-c", "--config", type=Path, help="fleet console config (TOML)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="MQTT ingest, alerts, responders and the dashboard")
    serve.add_argument("--port", type=int, help="web port (overrides web.port)")
    serve.add_argument("--no-mqtt", action="store_true", help="dashboard only, no broker")

    sub.add_parser(
        "worker",
        help="MQTT ingest and responders without the dashboard: one of several workers sharing "
        "the kiosks' topics ([mqtt] shared_group; docs/fleet-console.md, 'Several workers')",
    )

    staff = sub.add_parser(
        "staff-account",
        help="one entry of the set-staff command: the PIN (read from stdin or the terminal) "
        "hashed here, so the PIN itself never travels over MQTT",
    )
    staff.add_argument("name", help="login handle, e.g. lan.nguyen")
    staff.add_argument("--role", choices=("staff", "technician"), default="staff")
    staff.add_argument("--disabled", action="store_true", help="the account cannot sign in")

    sub.add_parser(
        "init-db", help="create the tables or migrate them to this version (serve does it too)"
    )

    op = sub.add_parser("operator", help="operators who log in and sign commands")
    op_sub = op.add_subparsers(dest="action", required=True)
    add = op_sub.add_parser("add", help="new operator with a new signing key")
    add.add_argument("operator_id")
    add.add_argument("--name", required=True)
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument(
        "--trust-dir", type=Path, help="also write <dir>/<operator>.pem for kiosks' trust_dir"
    )
    op_sub.add_parser("list", help="operators")
    disable = op_sub.add_parser("disable", help="no more logins or commands (sessions end)")
    disable.add_argument("operator_id")
    pub = op_sub.add_parser("public-key", help="print an operator's public key (PEM)")
    pub.add_argument("operator_id")

    site = sub.add_parser("site", help="put a kiosk in a site")
    site.add_argument("kiosk_id")
    site.add_argument("site")

    token = sub.add_parser("token", help="one-time claim token for online enrolment")
    token.add_argument("kiosk_id")
    token.add_argument("--site", default="")
    token.add_argument("--serial", default="", help="allowlisted device serial (default: any)")
    token.add_argument("--by", default="cli", help="who made it (logged)")

    dossier = sub.add_parser("dossier", help="the dossier table kiosks query")
    d_sub = dossier.add_subparsers(dest="action", required=True)
    d_sub.add_parser("seed", help="insert the sample dossiers")
    put = d_sub.add_parser("put", help="insert or replace one dossier from JSON on stdin")
    put.add_argument("code")
    owner = d_sub.add_parser(
        "owner",
        help="record whose dossier it is: the 12-digit ID number on stdin (never an argument, "
        "which other users could see); only a keyed hash is stored",
    )
    owner.add_argument("code")
    ship_p = d_sub.add_parser(
        "ship",
        help="record the Vietnam Post reference of a post request (its S10 check digit is "
        "checked first); the running console sends it to the kiosk that took the request",
    )
    ship_p.add_argument("request_id", help="the post request's id, or the 8 characters printed")
    ship_p.add_argument("reference", help="the S10 item reference, e.g. EE473124829VN")
    ship_p.add_argument(
        "--status", choices=("accepted", "in_transit", "delivered", "returned"), default="accepted"
    )
    ship_p.add_argument("--by", default="cli", help="who records it (audited)")

    revoke = sub.add_parser(
        "revoke",
        help="revoke an e-copy by its code (or a signing certificate by serial); kiosks get "
        "the list with the next send from the dashboard's revocations page",
    )
    revoke.add_argument("code")
    revoke.add_argument("--certificate", action="store_true", help="CODE is a hex serial")
    revoke.add_argument("--reason", default="")
    revoke.add_argument("--by", default="cli")
    _certify_parser(sub)
    _catalog_parser(sub)
    demo = sub.add_parser("demo", help="demonstrations that run on one PC")
    demo_sub = demo.add_subparsers(dest="demo", required=True)
    d_cert = demo_sub.add_parser(
        "certify",
        help="the whole certification loop on the loopback: a simulated kiosk, Mosquitto, the "
        "console, a scripted officer signing with SoftHSM2 development tokens",
    )
    d_cert.add_argument(
        "--original",
        action="append",
        required=True,
        metavar="P1.png[,P2.png...]",
        help="one original (repeatable); a comma-separated list is one multi-page original",
    )
    d_cert.add_argument("--out", type=Path, required=True, help="folder for <code>.pdf")
    d_cert.add_argument("--json", action="store_true", help='print {"copies": [...]} only')
    d_cert.add_argument("--timeout", type=float, default=120.0, help="overall limit, seconds")
    return parser


def _certify_parser(sub: Any) -> None:
    """`certify serve`, `certify officer add|list|disable` (the workstation) and `certify book`
    (the register), issue 16."""
    certify = sub.add_parser("certify", help="certification of copies: desk, officers, book")
    c_sub = certify.add_subparsers(dest="action", required=True)
    book = c_sub.add_parser("book", help="export the certification book as the register")
    book.add_argument("--agency", help="agency id (default: [certify] agency_id)")
    book.add_argument("--year", type=int, required=True)
    book.add_argument("--month", type=int, choices=range(1, 13), metavar="M")
    book.add_argument("--day", type=int, choices=range(1, 32), metavar="D")
    book.add_argument("--format", choices=("csv", "pdf"), required=True)
    book.add_argument("--out", type=Path, required=True)
    c_serve = c_sub.add_parser("serve", help="the officers' workstation and /v/<code>")
    c_serve.add_argument("--host", default="127.0.0.1")
    c_serve.add_argument("--port", type=int, default=8091)
    c_serve.add_argument("--no-mqtt", action="store_true", help="no broker (decisions queue)")
    officer = c_sub.add_parser("officer", help="certifying officers and centre admins")
    o_sub = officer.add_subparsers(dest="officer_action", required=True)
    o_add = o_sub.add_parser("add", help="new account; prints its TOTP URI and QR once")
    o_add.add_argument("username")
    o_add.add_argument("--full-name", required=True, help="as printed under the statement")
    o_add.add_argument("--title", required=True, help="e.g. Phó Chủ tịch UBND phường")
    o_add.add_argument("--agency", required=True)
    o_add.add_argument("--role", choices=("officer", "admin"), default="officer")
    o_add.add_argument("--token-label", default="", help="the officer's PKCS#11 token")
    o_add.add_argument("--key-label", default="", help="the signing key on that token")
    o_add.add_argument("--password-stdin", action="store_true")
    o_list = o_sub.add_parser("list", help="accounts")
    o_list.add_argument("--agency")
    o_dis = o_sub.add_parser("disable", help="no more logins")
    o_dis.add_argument("username")


def _catalog_parser(sub: Any) -> None:
    """`catalog import|diff|push`: keep the kiosks' procedure catalog current (issue 19)."""
    catalog = sub.add_parser(
        "catalog", help="the procedure catalog: import a province's list, diff, push to kiosks"
    )
    c_sub = catalog.add_subparsers(dest="action", required=True)
    imp = c_sub.add_parser(
        "import",
        help="merge a province's published list (XLSX or CSV) into a catalog by official code; "
        "prints the report and the diff, then writes --out (only if it validates)",
    )
    imp.add_argument("list", type=Path, help="the list: .xlsx, or .csv in UTF-8")
    imp.add_argument("--base", type=Path, required=True, help="the current catalog (JSON)")
    imp.add_argument("--out", type=Path, required=True, help="the new catalog (JSON)")
    imp.add_argument("--sheet", help="XLSX sheet name (default: the first)")
    imp.add_argument("--version", help="the new catalog's version (default: today, 2026.12.06)")
    imp.add_argument(
        "--expire-missing",
        metavar="YYYY-MM-DD",
        help="last day for catalog procedures the list no longer has (their valid_to)",
    )
    imp.add_argument(
        "--checked", metavar="YYYY-MM-DD", help="day recorded as checked (default: today, VN)"
    )
    imp.add_argument(
        "--source", help="the decision that published the list, added to updated entries' sources"
    )
    diff = c_sub.add_parser("diff", help="what changes from one catalog to another, by entry")
    diff.add_argument("old", type=Path)
    diff.add_argument("new", type=Path)
    push = c_sub.add_parser(
        "push",
        help="send a catalog to kiosks as the signed update-catalog command (gzip'd); the "
        "running console records the kiosks' results, which this waits for",
    )
    push.add_argument("catalog", type=Path)
    who = push.add_mutually_exclusive_group(required=True)
    who.add_argument("--kiosk", action="append", dest="kiosks", metavar="ID", help="repeatable")
    who.add_argument("--all", action="store_true", help="every kiosk the console knows")
    push.add_argument("--site", help="with --all: only this site's kiosks")
    push.add_argument("--operator", required=True, help="whose key signs (asks the password)")
    push.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    push.add_argument(
        "--cert",
        type=Path,
        required=True,
        help="this sender's own client certificate (CN fleet-catalog; docs/fleet.md)",
    )
    push.add_argument("--key", type=Path, required=True)
    push.add_argument("--ttl", type=float, help="seconds the command stays valid")
    push.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="seconds to wait for the kiosks' results (0: do not wait)",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("kiosk-fleet", lambda: _configured(args))


def _configured(args: argparse.Namespace) -> int:
    missing = _missing_central_packages()
    if missing:
        # A kiosk's install has no central extra: say what to install, not a traceback.
        raise KioskError(
            f"{', '.join(missing)} not installed; the fleet console needs the "
            "central extra: pip install 'kiosk-edge[central]'"
        )
    if args.command == "demo":
        # Makes its own broker, store, tokens and config in a temp dir: -c is not read.
        from fleet.certify import demo

        logging.basicConfig(
            level=logging.WARNING,
            format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        logging.getLogger(demo.__name__).setLevel(logging.INFO)
        return demo.main(args.original, args.out, as_json=args.json, timeout_s=args.timeout)
    if args.command == "catalog" and args.action in ("import", "diff"):
        return catalog_offline(args)  # files only: no config, no store
    if args.command == "staff-account":
        print(json.dumps(staff_account(args.name, _read_pin(), role=args.role,
                                       disabled=args.disabled)))  # fmt: skip
        return EXIT_OK
    from fleet.config import load_config

    config = load_config(args.config)
    logging.basicConfig(
        level=config.logging.level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return _run(args, config)


def staff_account(name: str, pin: str, *, role: str, disabled: bool = False) -> dict[str, Any]:
    """{name, pin_hash, role, disabled} for set-staff's "accounts" list (edge/store/staff.py
    checks it again on the kiosk). The hash is werkzeug's scrypt, as `kiosk staff add` makes."""
    from werkzeug.security import generate_password_hash

    from protocol.staff import check_name, check_pin

    return {
        "name": check_name(name),
        "pin_hash": generate_password_hash(check_pin(pin)),
        "role": role,
        "disabled": disabled,
    }


def _read_pin() -> str:
    if sys.stdin.isatty():
        pin = getpass.getpass("PIN (4-12 digits): ")
        if getpass.getpass("Again: ") != pin:
            raise BadInput("the two PINs differ")
        return pin
    return sys.stdin.readline().strip()


def _missing_central_packages() -> list[str]:
    import importlib.util

    return [
        name
        for name in ("sqlalchemy", "alembic", "psycopg", "prometheus_client")
        if importlib.util.find_spec(name) is None
    ]


def _run(args: argparse.Namespace, config: Any) -> int:
    from fleet.console import open_store

    if args.command == "serve":
        return serve(config, port=args.port, mqtt=not args.no_mqtt)
    if args.command == "worker":
        return worker(config)
    if args.command == "catalog":
        return catalog_push(args, config)
    if args.command == "certify" and args.action == "serve":
        return certify_serve(config, host=args.host, port=args.port, mqtt=not args.no_mqtt)
    store = open_store(config).create()
    try:
        match args.command:
            case "init-db":
                print(f"tables ready in {store.dialect}, schema revision {store.revision()}")
            case "operator":
                return _operator(store, args)
            case "certify" if args.action == "officer":
                return _certify_officer(store, args)
            case "site":
                store.set_site(args.kiosk_id, args.site)
            case "token":
                from fleet.console import Console

                console = Console(config, store=store).prepare()
                token = console.create_claim(
                    args.kiosk_id, site=args.site, serial=args.serial, created_by=args.by
                )
                print(token)
            case "dossier":
                from fleet.dossiers import (
                    owner_key,
                    put_keeping_own,
                    seed_samples,
                    set_owner,
                    ship,
                    validate_dossier,
                )

                if args.action == "ship":
                    done = ship(store, args.request_id, args.reference, args.status, by=args.by)
                    print(
                        f"recorded {done['reference']} ({done['status']}) for request "
                        f"{done['request_id']}; the running console sends it to {done['kiosk']}"
                    )
                elif args.action == "seed":
                    print(f"{seed_samples(store, force=True)} sample dossiers")
                elif args.action == "owner":
                    key = owner_key(config.web.secret_key_file.with_name("dossier-owner.key"))
                    set_owner(store, key, args.code, sys.stdin.read().strip())
                    print("owner recorded")
                else:
                    data = json.loads(sys.stdin.read())
                    put_keeping_own(store, args.code, validate_dossier(args.code, data))
            case "revoke":
                kind = "certificate" if args.certificate else "code"
                code = args.code.lower() if args.certificate else args.code.upper()
                if args.certificate and not re.fullmatch(r"[0-9a-f]{1,40}", code):
                    # One bad entry would make every kiosk refuse the whole retained list.
                    print(f"not a hex serial: {args.code!r}", file=sys.stderr)
                    return 2
                fresh = store.revoke_copy(
                    code, reason=args.reason, operator=args.by, now=time.time(), kind=kind
                )
                print("revoked" if fresh else "already revoked")
            case "certify":
                return _certify_book(store, config, args)
    finally:
        store.close()
    return EXIT_OK


def catalog_offline(args: argparse.Namespace) -> int:
    """`catalog import` and `catalog diff`: the report and diff on stdout."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from fleet import catalog_import as ci

    if args.action == "diff":
        print("\n".join(ci.diff(ci.load_catalog(args.old), ci.load_catalog(args.new))) or "same")
        return EXIT_OK
    today = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    expire = ci.parse_day(args.expire_missing, "--expire-missing") if args.expire_missing else None
    checked = ci.parse_day(args.checked, "--checked") if args.checked else today
    base, document, report = ci.prepare_import(
        args.list,
        args.base,
        today=checked,
        sheet=args.sheet,
        version=args.version,
        expire_missing=expire,
        source=args.source,
    )
    print("\n".join(report.lines()))
    print(f"--- {args.base}\n+++ {args.out}")
    print("\n".join(ci.diff(base, document)) or "same")
    ci.write_catalog(args.out, document)
    print(f"written: {args.out} (version {document['version']})")
    return EXIT_OK


def catalog_push(args: argparse.Namespace, config: Any) -> int:
    """Sign update-catalog for each kiosk through the console's own path (the operator's key
    unlocked by the key ring, Console.send_command, the command log), publish on a connection
    of this sender's own certificate, and wait for the results the running console records."""
    import secrets

    from fleet import catalog_import as ci
    from fleet.console import Console, open_store
    from protocol.mqtt import new_client, tls_context

    document = ci.load_catalog(args.catalog)
    packed = ci.packed_args(document)
    store = open_store(config).create()
    publisher = None
    try:
        kiosk_ids = args.kiosks or [k["kiosk_id"] for k in store.kiosks(site=args.site)]
        if not kiosk_ids:
            raise BadInput("no kiosk to send to")
        password = (
            sys.stdin.readline().rstrip("\n")
            if args.password_stdin
            else getpass.getpass("Mật khẩu / password: ")
        )
        console = Console(config, store=store)
        handle, _ = console.keys.login(store, args.operator, password, address="cli")
        m = config.mqtt
        # The broker makes the certificate's CN the client id: a certificate of its own keeps
        # this connection from taking over the running console's session.
        publisher = new_client(f"fleet-catalog-{secrets.token_hex(4)}", tls=(
            tls_context(m.ca_file, args.cert, args.key) if m.tls else None))  # fmt: skip
        connected = threading.Event()
        acks: dict[int, Any] = {}  # mid -> PUBACK reason code (MQTT 5 says "Not authorized")
        publisher.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
        publisher.on_publish = lambda c, u, mid, rc, p: acks.__setitem__(mid, rc)
        publisher.connect(m.host, m.port, keepalive=m.keepalive_s, clean_start=True)
        publisher.loop_start()
        if not connected.wait(15):
            raise KioskError(f"could not connect to the broker {m.host}:{m.port}")

        def publish(envelope: dict[str, Any], kiosk_id: str) -> None:
            topic = f"{m.topic_prefix}/{kiosk_id}/cmd/{envelope['name']}"
            payload = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
            info = publisher.publish(topic, payload, qos=1)
            info.wait_for_publish(30)
            reason = acks.get(info.mid)
            if info.rc != 0 or not info.is_published() or (reason and reason.is_failure):
                raise KioskError(
                    f"the broker did not take the command for {kiosk_id} ({reason}; "
                    "the ACL must let this certificate's CN write kiosk/v1/+/cmd/update-catalog)"
                )

        sent = console.send_command(
            handle, "update-catalog", packed, kiosk_ids=kiosk_ids, ttl_s=args.ttl, publish=publish
        )
        print(
            f"update-catalog {document['version']} ({len(packed['catalog_gzip_b64'])} "
            f"characters packed) sent to {len(sent)} kiosks by {args.operator}"
        )
        if args.wait <= 0:
            return EXIT_OK  # the console's command log will show the answers
        deadline = time.monotonic() + args.wait
        pending = {e["id"]: e["target"] for e in sent}
        failed = 0
        while pending and time.monotonic() < deadline:
            for command_id, kiosk_id in list(pending.items()):
                row = store.command(command_id)
                if row is None or row["status"] == "sent":
                    continue
                del pending[command_id]
                if row["status"] == "ok":
                    result = row["result"] or {}
                    print(f"{kiosk_id}\tok\tversion {result.get('version')}")
                else:
                    failed += 1
                    print(f"{kiosk_id}\t{row['status']}\t{row.get('reason')}: {row.get('message')}")
            time.sleep(0.2)
        for kiosk_id in pending.values():
            print(f"{kiosk_id}\tno answer yet (offline kiosks get it when they return)")
        return EXIT_OK if not failed and not pending else EXIT_FAILED
    finally:
        if publisher is not None:
            publisher.disconnect()
            publisher.loop_stop()
        store.close()


def _certify_book(store: Any, config: Any, args: argparse.Namespace) -> int:
    from fleet.certify.service import Certifier

    agency = args.agency or config.certify.agency_id
    if not agency:
        raise BadInput("--agency, or [certify] agency_id, is needed")
    if args.day is not None and args.month is None:
        raise BadInput("--day needs --month")
    certifier = Certifier(store, config=config.certify, publish=lambda _t, _m: None)
    data = certifier.export(agency, year=args.year, month=args.month, day=args.day, fmt=args.format)
    args.out.write_bytes(data)
    entries = certifier.book(agency, year=args.year, month=args.month, day=args.day)
    print(f"{len(entries)} entries -> {args.out}")
    return EXIT_OK


def _operator(store: Any, args: argparse.Namespace) -> int:
    from fleet.operators import create_operator

    if args.action == "add":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Mật khẩu / password: ")
            if getpass.getpass("Nhập lại / again: ") != password:
                raise BadInput("the two passwords differ")
        public = create_operator(store, args.operator_id, args.name, password)
        if args.trust_dir:
            args.trust_dir.mkdir(parents=True, exist_ok=True)
            (args.trust_dir / f"{args.operator_id}.pem").write_text(public)
        print(public, end="")
    elif args.action == "list":
        for row in store.operators():
            state = "disabled" if row["disabled"] else "active"
            print(f"{row['id']}\t{row['name']}\t{state}")
    elif args.action == "disable":
        if store.operator(args.operator_id) is None:
            print(f"no operator {args.operator_id}", file=sys.stderr)
            return EXIT_BAD_INPUT
        store.update_operator(args.operator_id, disabled=True)
        print(f"{args.operator_id} disabled; remove <trust_dir>/{args.operator_id}.pem on kiosks")
    elif args.action == "public-key":
        row = store.operator(args.operator_id)
        if row is None:
            print(f"no operator {args.operator_id}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(row["public_key"], end="")
    return EXIT_OK


def _certify_officer(store: Any, args: argparse.Namespace) -> int:
    if args.officer_action == "add":
        import segno

        from fleet.certify.accounts import create_officer

        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Mật khẩu / password: ")
            if getpass.getpass("Nhập lại / again: ") != password:
                raise BadInput("the two passwords differ")
        uri = create_officer(
            store,
            args.username,
            full_name=args.full_name,
            title=args.title,
            agency=args.agency,
            role=args.role,
            password=password,
            token_label=args.token_label,
            key_label=args.key_label,
        )
        print("Quét mã này bằng ứng dụng xác thực / scan with the authenticator app:")
        segno.make(uri, error="m").terminal(out=sys.stdout, compact=True)
        print(uri)
    elif args.officer_action == "list":
        for row in store.officers(args.agency):
            state = "active" if row["active"] else "disabled"
            print(f"{row['username']}\t{row['agency']}\t{row['role']}\t{row['full_name']}\t{state}")
    elif args.officer_action == "disable":
        if not store.update_officer(args.username, active=False):
            print(f"no officer {args.username}", file=sys.stderr)
            return EXIT_BAD_INPUT
        store.audit("cli", "officer_disable", at=time.time(), detail={"target": args.username})
        print(f"{args.username} disabled")
    return EXIT_OK


def certify_serve(config: Any, *, host: str, port: int, mqtt: bool = True) -> int:
    """The workstation beside the console's ingest (which hands it the Certifier)."""
    from fleet.certify.web import DeskConfig, create_app
    from fleet.console import build_console
    from web_ui.server import WebServer

    if not config.certify.enabled:
        raise BadInput("[certify] agency_id is empty: the desk has no agency to certify for")
    console = build_console(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    desk = DeskConfig(
        secret_key_file=config.web.secret_key_file.with_name("certify-secret.key"),
        cookie_secure=config.web.cookie_secure,
        proxy_hops=config.web.proxy_hops,
    )
    web = None
    try:
        console.start(mqtt=mqtt)  # attaches the responders: the Certifier among them
        web = WebServer(
            create_app(console.certifier, console.store, desk), host=host, port=port, threads=8
        )
        web.start()
        logger.info("certification desk on http://%s:%s/", host, web.port)
        while not stop.wait(3600):
            pass
    finally:
        if web is not None:
            web.stop()
        console.stop()
    return EXIT_OK


def serve(config: Any, *, port: int | None = None, mqtt: bool = True) -> int:
    from fleet.console import build_console
    from fleet.web import create_app
    from web_ui.server import WebServer

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    console = build_console(config)
    web = WebServer(
        create_app(console),
        host=config.web.host,
        port=config.web.port if port is None else port,
        threads=8,
    )
    try:
        console.start(mqtt=mqtt)
        web.start()
        logger.info("fleet console on http://%s:%s/", config.web.host, web.port)
        while not stop.wait(3600):
            pass
    finally:
        web.stop()
        console.stop()
    return EXIT_OK


def worker(config: Any) -> int:
    """`serve` without the web server, until SIGTERM; its ingest figures logged at the end."""
    from fleet.console import build_console

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    console = build_console(config)
    try:
        console.start()
        logger.info(
            "fleet worker started",
            extra={"client_id": config.mqtt.client_id, "group": config.mqtt.shared_group},
        )
        while not stop.wait(3600):
            pass
    finally:
        console.stop()
        s = console.ingest.stats
        logger.info(
            "fleet worker stopped: received=%d stored=%d duplicates=%d redelivered=%d",
            s.received,
            s.stored,
            s.duplicates,
            s.redelivered,
        )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
