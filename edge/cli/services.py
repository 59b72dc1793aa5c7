"""`kiosk ticket ...`, `kiosk dossier ...`, `kiosk guide ...`: the citizen services for technicians.

Tickets and the guide work on the kiosk's own database and catalog (SQLite serialises writers,
so this is safe next to a running daemon). A dossier lookup needs the kiosk's MQTT connection,
which only the daemon holds: with a daemon running the CLI asks it; without one it can only show
a cached answer.
"""

from __future__ import annotations

import argparse
import urllib.parse
from typing import Any

from edge.cli.context import Context, LocalParts
from edge.config import PRIORITY_GROUP_CODES
from edge.errors import EXIT_FAILED, EXIT_OK


def add_parsers(sub: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    ticket = sub.add_parser("ticket", parents=[common], help="queue tickets")
    ticket.set_defaults(handler=run)
    ticket_sub = ticket.add_subparsers(
        dest="ticket_command", required=True, parser_class=parser_class
    )
    take = ticket_sub.add_parser("take", parents=[common], help="issue (and print) a ticket")
    take.add_argument("area", help="service area letter, e.g. B (see 'kiosk ticket areas')")
    take.add_argument("--no-print", action="store_true", help="issue without printing")
    take.add_argument(
        "--priority",
        choices=PRIORITY_GROUP_CODES,
        help="a priority ticket (B-UT001 ..., served first) for this self-declared group",
    )
    ticket_sub.add_parser("areas", parents=[common], help="areas, today's numbers, waiting")

    dossier = sub.add_parser("dossier", parents=[common], help="dossier status from central")
    dossier.set_defaults(handler=run)
    dossier_sub = dossier.add_subparsers(
        dest="dossier_command", required=True, parser_class=parser_class
    )
    status = dossier_sub.add_parser("status", parents=[common], help="look a dossier up")
    status.add_argument("code", help="dossier code, e.g. 000.00.13.H26-241120-0007, or QR text")

    guide = sub.add_parser("guide", parents=[common], help="the procedure catalog")
    guide.set_defaults(handler=run)
    guide_sub = guide.add_subparsers(dest="guide_command", required=True, parser_class=parser_class)
    search = guide_sub.add_parser("search", parents=[common], help="search procedures")
    search.add_argument("query", nargs="+", help="words, with or without diacritics")
    search.add_argument("--limit", type=int, default=10)
    show = guide_sub.add_parser("show", parents=[common], help="one procedure in full")
    show.add_argument("id", help="procedure id, e.g. HT-001")
    show.add_argument("--print", dest="print_it", action="store_true", help="print its checklist")
    guide_sub.add_parser("info", parents=[common], help="catalog version and files")


def run(args: argparse.Namespace, ctx: Context) -> int:
    emit, config = ctx.emit, ctx.config
    if args.command == "guide" and not (args.guide_command == "show" and args.print_it):
        return _guide(args, emit, config, _catalog_only(config))
    if args.command == "dossier":
        answer = _ask_daemon(ctx, args.code)
        if answer is not None:
            return _show_dossier(answer, emit)
    parts = ctx.parts
    if args.command == "ticket":
        return _ticket(args, emit, parts)
    if args.command == "dossier":
        status = parts.services.dossiers.lookup(args.code, session_id="cli")
        return _show_dossier(status.as_dict(), emit)
    return _guide(args, emit, config, parts.services.catalog, parts.services)


def _ask_daemon(ctx: Context, code: str) -> dict[str, Any] | None:
    """The running daemon's answer (it holds the MQTT connection), or None without a daemon."""
    if not ctx.daemon.running():
        return None
    query = urllib.parse.urlencode({"code": code, "session": "cli"})
    timeout = ctx.config.services.dossier_timeout_s + 5
    return ctx.daemon.request(
        "GET", f"/api/services/dossier?{query}", timeout=timeout, refusal_raises=True
    )


def _catalog_only(config: Any) -> Any:
    from edge.services.catalog import CatalogService

    return CatalogService(config.storage.state_dir / "catalog", timezone=config.kiosk.timezone)


def _ticket(args: argparse.Namespace, emit: Any, parts: LocalParts) -> int:
    tickets = parts.services.tickets
    if args.ticket_command == "areas":
        areas = tickets.areas()
        emit(
            {"areas": areas},
            "\n".join(
                f"{a['code']}  {a['name']:<22} issued today {a['issued_today']:>4}, "
                f"waiting {a['waiting']}"
                for a in areas
            ),
        )
        return EXIT_OK
    ticket = tickets.take(args.area, print_ticket=not args.no_print, priority=args.priority)
    data = ticket.as_dict()
    wait = "unknown" if ticket.estimated_wait_min is None else f"~{ticket.estimated_wait_min} min"
    printed = (
        "not printed"
        if ticket.printed is None
        else "printed"
        if ticket.printed.printed
        else f"NOT printed, kept for reprint (job {ticket.printed.job_id}): {ticket.printed.error}"
    )
    emit(
        data,
        f"{ticket.number}  {ticket.area_name}  ({ticket.waiting_ahead} waiting ahead, wait "
        f"{wait})  {printed}",
    )
    return EXIT_OK if ticket.printed is None or ticket.printed.printed else 3


def _show_dossier(data: dict[str, Any], emit: Any) -> int:
    if not data["found"]:
        lines = [f"{data['code']}: không tìm thấy hồ sơ (not found)"]
    else:
        lines = [
            f"{data['code']}: {data['status_vi']} ({data['status']})",
            f"thủ tục: {data['procedure'] or '-'}",
            f"nơi giải quyết: {data['agency'] or '-'}",
            f"tiếp nhận: {data['received_at'] or '-'}   hẹn trả: {data['due_at'] or '-'}"
            + (f"   {data['on_time_vi']}" if data["on_time_vi"] else ""),
        ]
        if data["reason"]:
            lines.append(f"lý do: {data['reason']}")
        lines += [f"  {s['at']}  {s['status_vi']}  {s['note'] or ''}" for s in data["timeline"]]
    if data["source"] == "cache":
        lines.append(f"(KHÔNG phải dữ liệu mới nhất: {data['age_vi']}; {data['stale_reason']})")
    emit(data, "\n".join(lines))
    return EXIT_OK if data["found"] else EXIT_FAILED


def _guide(
    args: argparse.Namespace, emit: Any, config: Any, catalog: Any, services: Any = None
) -> int:
    if args.guide_command == "info":
        current = catalog.catalog
        emit(
            {
                "version": current.version,
                "updated": current.updated,
                "procedures": len(current),
                "installed": catalog.current_path.exists(),
                "previous": catalog.previous_path.exists(),
            },
            f"catalog {current.version} ({current.updated}), {len(current)} procedures, "
            + ("installed update" if catalog.current_path.exists() else "bundled"),
        )
        return EXIT_OK
    if args.guide_command == "search":
        hits = catalog.search(" ".join(args.query), limit=args.limit)
        emit(
            {"version": catalog.version, "hits": [h.as_dict() for h in hits]},
            "\n".join(
                f"{h.procedure.id:<8} {h.score:5.1f}  {h.procedure.name}"
                + (f"  [elsewhere: {h.procedure.where}]" if h.procedure.is_referral else "")
                for h in hits
            )
            or "no procedure matches",
        )
        return EXIT_OK if hits else EXIT_FAILED
    procedure = catalog.get(args.id)
    data = procedure.as_dict()
    text = [f"{procedure.id}  {procedure.name}  ({procedure.field})", "Giấy tờ:"]
    for paper in procedure.papers:
        counts = ", ".join(
            c
            for c in (
                f"{paper.original} bản chính" if paper.original else "",
                f"{paper.copy} bản sao" if paper.copy else "",
            )
            if c
        )
        text.append(f"  - {paper.name}: {counts}" + (f" ({paper.note})" if paper.note else ""))
    text += [
        f"Phí, lệ phí: {procedure.fee_text}",
        f"Thời hạn: {procedure.time_text}",
        f"Nơi nộp: {procedure.where}",
        f"Trực tuyến: {procedure.online_vi}",
        "Căn cứ: " + "; ".join(procedure.legal_basis),
    ]
    code = EXIT_OK
    if services is not None:
        outcome = services.print_checklist(procedure.id)
        data["printed"] = outcome.as_dict()
        text.append(
            "checklist printed"
            if outcome.printed
            else f"checklist NOT printed, kept for reprint (job {outcome.job_id}): {outcome.error}"
        )
        code = EXIT_OK if outcome.printed else 3
    emit(data, "\n".join(text))
    return code
