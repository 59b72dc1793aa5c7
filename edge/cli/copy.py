"""`kiosk copy issue|verify|list|receipt` and `kiosk receipt demo`: e-copies from the command line.

`copy issue` calls the same CopyService.issue() as the web UI, on this kiosk's store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import fcntl
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

from edge import config as cfg
from edge.cli.context import Context
from edge.errors import EXIT_FAILED, EXIT_OK, BadInput, KioskError
from protocol.files import fsync_dir, write_atomic

logger = logging.getLogger(__name__)

# A copy's PDF holds a citizen's document: only its owner may read the file.
PDF_MODE = 0o600


class CopyNotWritten(KioskError):
    """The copy was issued and stored, but its PDF could not be written where asked."""

    code = "copy_not_written"


def add_parsers(sub: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    copy = sub.add_parser("copy", parents=[common], help="electronic certified copies")
    copy.set_defaults(handler=run)
    copy_sub = copy.add_subparsers(dest="copy_command", required=True, parser_class=parser_class)
    issue = copy_sub.add_parser(
        "issue", parents=[common], help="issue a signed copy from page images (as the screen does)"
    )
    issue.add_argument(
        "--pages", nargs="+", type=Path, required=True, help="rectified page images, in order"
    )
    issue.add_argument(
        "--citizen-qr", required=True, help="the citizen's CCCD QR payload (id|old id|name|...)"
    )
    issue.add_argument("--out", type=Path, required=True, help="where to write the signed PDF")
    issue.add_argument(
        "--print", dest="print_receipt", action="store_true", help="also print the receipt"
    )
    verify = copy_sub.add_parser(
        "verify", parents=[common], help="check a copy: PDF file, QR text or typed code"
    )
    verify.add_argument("file", nargs="?", type=Path, help="the copy's PDF")
    verify.add_argument("--qr", help="the text of a copy's QR code")
    verify.add_argument("--code", help="a code of a copy issued on this kiosk")
    listing = copy_sub.add_parser("list", parents=[common], help="copies stored on this kiosk")
    listing.add_argument("--limit", type=int, default=50)
    get = copy_sub.add_parser("get", parents=[common], help="write a stored copy's signed PDF")
    get.add_argument("code")
    get.add_argument("--out", type=Path, required=True)
    receipt = copy_sub.add_parser(
        "receipt", parents=[common], help="print a copy's receipt again (or write it to a file)"
    )
    receipt.add_argument("code")
    receipt.add_argument("--out", type=Path, help="write the ESC/POS job here instead of printing")

    receipts = sub.add_parser("receipt", parents=[common], help="receipt layouts")
    receipts.set_defaults(handler=receipt_demo)  # a sample job to a file; no kiosk config needed
    receipts_sub = receipts.add_subparsers(
        dest="receipt_command", required=True, parser_class=parser_class
    )
    demo = receipts_sub.add_parser(
        "demo", parents=[common], help="write a sample receipt job (raw ESC/POS) to a file"
    )
    demo.add_argument("--out", type=Path, required=True)
    demo.add_argument(
        "--kind",
        choices=["copy", "ticket", "checklist"],
        default="copy",
        help="copy receipt, queue ticket, or the required-papers checklist of a procedure",
    )
    demo.add_argument("--paper", type=int, choices=[58, 80], default=80, help="paper width, mm")
    demo.add_argument(
        "--profile", help="python-escpos capability profile (default: TM-T88V; 58 mm: NT-5890K)"
    )
    demo.add_argument(
        "--raster-qr", action="store_true", help="QR as an image, not the printer's QR command"
    )


def receipt_demo(args: argparse.Namespace, ctx: Context) -> int:
    return _demo(args, ctx.emit)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from edge.copies.issue import CopyService

    emit = ctx.emit
    parts = ctx.parts  # closed when the command ends
    service = CopyService(
        ctx.config,
        store=parts.store,
        key=parts.key,
        outbox=parts.outbox,
        printer=parts.printer,
        # One copy per run: reserving a block would burn the other numbers at exit.
        sequence_block=1,
    )
    if args.copy_command in ("issue", "verify", "receipt"):
        try:
            service.open()
        except Exception:
            if args.copy_command == "issue":
                raise
            # Verifying needs only the trust store; this kiosk's own key may be missing.
    match args.copy_command:
        case "issue":
            return _issue(args, service, emit)
        case "verify":
            return _verify(args, service, emit)
        case "list":
            return _list(args, service, emit)
        case "receipt":
            return _receipt(args, service, emit)
        case "get":
            data = service.pdf(args.code)
            _remove_leftovers(args.out)
            try:
                _write_pdf(args.out, data)
            except OSError as err:
                raise BadInput(f"cannot write {args.out}: {err.strerror or err}") from err
            emit({"code": args.code, "pdf": str(args.out)}, f"copy written to {args.out}")
            return EXIT_OK
    raise BadInput(f"unknown copy command {args.copy_command!r}")


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        write_atomic(path, data)
    except OSError as err:
        raise BadInput(f"cannot write {path}: {err.strerror}") from err


# A copy's PDF goes to ".<name>.tmp" beside the target, then is renamed over it. A run killed
# before the rename leaves that file behind: a hidden copy of a citizen's document. The writer
# holds a flock on it until the rename, so a later run tells a leftover (unlocked, removed)
# from another run's write in progress (locked, kept).
LEFTOVER_SUFFIX = ".pdf.tmp"


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def _write_pdf(path: Path, data: bytes) -> None:
    """Replace path with data: the whole file or none, owner-only, fsync'd, folder fsync'd."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = _temporary(path)
    # No O_TRUNC before the lock: a run that finds the file locked must not touch its content;
    # O_NOFOLLOW: a symlink planted at the temporary name is not written through.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, PDF_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        os.close(fd)
        raise OSError(errno.EBUSY, "another run is writing this file") from err
    try:
        os.ftruncate(fd, 0)
        os.fchmod(fd, PDF_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.replace(tmp, path)  # still locked: renamed before anyone may take it for a leftover
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def _remove_leftovers(target: Path) -> int:
    """Remove the `.NAME.pdf.tmp` files killed runs left beside target (and target's own
    temporary name, whatever its suffix); never a file another run is writing, a folder or
    anything else that is not ours. Returns how many were removed."""
    own = _temporary(target).name
    removed = 0
    try:
        with os.scandir(target.parent) as entries:
            names = [
                e.name
                for e in entries
                if e.name == own
                or (e.name.startswith(".") and e.name.endswith(LEFTOVER_SUFFIX) and len(e.name) > 9)
            ]
    except OSError:
        return 0  # no folder yet (get makes it) or not readable: writing will say what is wrong
    for name in names:
        path = target.parent / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            continue
        except OSError as err:
            if err.errno == errno.ELOOP and name == own:  # a symlink where we are to write
                path.unlink(missing_ok=True)
                removed += 1
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another run is writing it right now
            path.unlink(missing_ok=True)
            removed += 1
        except OSError as err:
            logger.warning("a leftover temporary file could not be removed: %s", err.strerror)
        finally:
            os.close(fd)
    if removed:
        logger.warning("removed temporary files left by interrupted runs", extra={"count": removed})
    return removed


def _issue(args: argparse.Namespace, service: Any, emit: Any) -> int:
    from edge.identity.cccd import parse_cccd

    citizen = parse_cccd(args.citizen_qr)
    out: Path = args.out
    # What can be checked is checked before a copy number is used.
    if not out.parent.is_dir():
        raise BadInput(f"thư mục {out.parent} không tồn tại (folder does not exist)")
    if out.is_dir():
        raise BadInput(f"{out} là một thư mục (is a folder, not a file)")
    _remove_leftovers(out)
    issued = service.issue(args.pages, citizen)
    if not args.json:
        # Said before the file is written: if this run dies now, the operator knows the copy.
        print(f"kiosk: copy {issued.code} issued, writing {out}", file=sys.stderr, flush=True)
    try:
        _write_pdf(out, issued.pdf)  # a kill leaves the whole file or none
    except OSError as err:
        logger.error("issued copy stored, its PDF file not written", extra={"code": issued.code})
        raise CopyNotWritten(
            f"copy {issued.code} was issued and stored, but {out} could not be written "
            f"({err.strerror or err}); `kiosk copy get {issued.code} --out FILE` writes it"
        ) from err
    data = {**issued.as_dict(), "pdf": str(out)}
    text = (
        f"copy {issued.code} issued: {issued.pages} pages, fee {issued.fee.label_vi}, "
        f"written to {out}"
    )
    if args.print_receipt:
        outcome = service.print_receipt(issued.code)
        data["receipt"] = outcome.as_dict()
        text += "\nreceipt " + (
            "printed" if outcome.printed else f"not printed, kept for reprint: {outcome.error}"
        )
    emit(data, text)
    return EXIT_OK


def _verify(args: argparse.Namespace, service: Any, emit: Any) -> int:
    given = [x for x in (args.file, args.qr, args.code) if x is not None]
    if len(given) != 1:
        raise BadInput("give one of: a PDF file, --qr TEXT or --code CODE")
    if args.file is not None:
        try:
            data = args.file.read_bytes()
        except OSError as err:
            raise BadInput(f"cannot read {args.file}: {err.strerror}") from err
        verdict = service.verify_pdf(data)
    elif args.qr is not None:
        verdict = service.verify_qr(args.qr)
    else:
        verdict = service.verify_code(args.code)
    body = verdict.as_dict()
    text = f"{verdict.status}: {verdict.message_vi}"
    if verdict.code and body.get("kind") == "certified":
        # A certified copy (issue 16): who certified it, and its place in the book.
        text += f"\nMã bản sao: {verdict.code}, chứng thực lúc {body['issued_at']}"
        if body.get("officer"):
            title = f"{body['officer_title']} " if body.get("officer_title") else ""
            text += f"\nNgười chứng thực: {title}{body['officer']}"
        if body.get("agency"):
            text += f"\nCơ quan: {body['agency']}"
        if body.get("number") or body.get("book"):
            text += f"\nSố chứng thực: {body.get('number')}, Quyển số: {body.get('book')}"
    elif verdict.code:
        text += f"\ncode {verdict.code}, kiosk {verdict.kiosk_id}, issued {body['issued_at']}"
    emit(body, text)
    return EXIT_OK if verdict.ok else EXIT_FAILED


def _list(args: argparse.Namespace, service: Any, emit: Any) -> int:
    rows = [r.as_dict() for r in service.list(limit=args.limit)]
    for row in rows:
        row["issued_at"] = dt.datetime.fromtimestamp(row["issued_at"], dt.UTC).isoformat()
    text = "\n".join(
        f"{r['code']}  {r['pages']:>3} p  {r['payable_vnd']:>7} VND  {r['issued_at']}"
        + ("" if r["sent_to_central"] else "  (not yet at central)")
        for r in rows
    )
    emit({"copies": rows}, text or "no copies stored")
    return EXIT_OK


def _receipt(args: argparse.Namespace, service: Any, emit: Any) -> int:
    if args.out:
        _write_atomic(args.out, service.receipt(args.code))
        emit({"out": str(args.out)}, f"receipt written to {args.out}")
        return EXIT_OK
    outcome = service.print_receipt(args.code)
    emit(
        outcome.as_dict(),
        "printed" if outcome.printed else f"not printed, kept for reprint: {outcome.error}",
    )
    return EXIT_OK if outcome.printed else 3


def _demo(args: argparse.Namespace, emit: Any) -> int:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from edge.copies import qrpayload
    from edge.copies.code import make_code
    from edge.copies.receipt import DEFAULT_PROFILES, copy_receipt
    from edge.fees import quote

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if args.kind != "copy":
        return _demo_service_slip(args, emit, now)
    code = make_code("HN-DEMO-01", now.date(), 1)
    key = ec.generate_private_key(ec.SECP256R1())  # a sample: signed by a throwaway key
    qr = qrpayload.build(
        code,
        now,
        qrpayload.content_hash([b"sample"]),
        lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())),
    )
    data = copy_receipt(
        code=code.text,
        pages=3,
        fee=quote(3, cfg.CopiesSection(fee_channel="at-kiosk"), "HN-DEMO-01"),
        issued_at=now,
        kiosk_id="HN-DEMO-01",
        site="Trung tâm Phục vụ hành chính công (mẫu)",
        qr=qr,
        paper_width_mm=args.paper,
        profile=args.profile or DEFAULT_PROFILES[args.paper],
        native_qr=False if args.raster_qr else None,
        sample=True,
    )
    _write_atomic(args.out, data)
    emit(
        {"out": str(args.out), "bytes": len(data), "qr": qr, "paper_width_mm": args.paper},
        f"sample receipt ({args.paper} mm, {len(data)} bytes) written to {args.out}",
    )
    return EXIT_OK


def _demo_service_slip(args: argparse.Namespace, emit: Any, now: dt.datetime) -> int:
    """A sample queue ticket or checklist, laid out exactly as the kiosk prints them."""
    from zoneinfo import ZoneInfo

    from edge.copies.receipt import DEFAULT_PROFILES
    from edge.services.catalog import BUNDLED_CATALOG, Catalog
    from edge.services.printouts import checklist_slip, ticket_slip
    from edge.services.tickets import Ticket

    site = "Trung tâm Phục vụ hành chính công (mẫu)"
    profile = args.profile or DEFAULT_PROFILES[args.paper]
    local = now.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    if args.kind == "ticket":
        ticket = Ticket(
            number="C-027",
            area="C",
            area_name="Chứng thực",
            day=local.date().isoformat(),
            seq=27,
            issued_at=local,
            waiting_ahead=4,
            estimated_wait_min=12,
            follow=f"KIOSK-QUEUE|HN-DEMO-01|{local:%Y-%m-%d}|C-027",
        )
        data = ticket_slip(
            ticket,
            site=site,
            paper_width_mm=args.paper,
            profile=profile,
            native_qr=False if args.raster_qr else None,
        )
        extra: dict[str, Any] = {"number": ticket.number, "qr": ticket.follow}
    else:
        catalog = Catalog.from_file(BUNDLED_CATALOG)
        procedure = catalog.procedures[0]
        data = checklist_slip(
            procedure,
            site=site,
            catalog_version=catalog.version,
            now=local,
            paper_width_mm=args.paper,
            profile=profile,
        )
        extra = {"procedure": procedure.id}
    _write_atomic(args.out, data)
    emit(
        {"out": str(args.out), "bytes": len(data), "kind": args.kind, "paper_width_mm": args.paper}
        | extra,
        f"sample {args.kind} ({args.paper} mm, {len(data)} bytes) written to {args.out}",
    )
    return EXIT_OK
