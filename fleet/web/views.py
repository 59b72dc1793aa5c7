"""The console's pages: dashboard and kiosks, commands, alerts and records, revocations,
provisioning claims, queues, metrics and health."""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import time
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3; types-WTForms 3.2.1, the newest, lacks it

from fleet.console import COMMANDS
from fleet.metrics import CONTENT_TYPE, exposition
from fleet.web.auth import console, local_target, login_required
from fleet.web.charts import line_chart
from fleet.web.forms import (
    CallForm,
    CommandForm,
    QueueForm,
    RevokeForm,
    ShipmentForm,
    SiteForm,
    TokenForm,
)
from protocol.errors import BadInput, KioskError

logger = logging.getLogger(__name__)

views = Blueprint("views", __name__)

SORT_KEYS = (
    "kiosk",
    "site",
    "state",
    "paper",
    "temp",
    "disk",
    "outbox",
    "seen",
    "cert",
    "version",
    "alerts",
)


def _page_number(text: str | None) -> int:
    try:
        return max(1, int(text or "1"))
    except ValueError:
        return 1


@views.route("/")
@login_required
def dashboard() -> Any:
    """One page of kiosks, filtered, sorted and counted in SQL (docs/fleet-console.md)."""
    store = console().store
    site = request.args.get("site") or None
    state = request.args.get("state") or None
    if state not in (None, "online", "offline", "unknown", "alerting"):
        state = None
    version = request.args.get("version") or None
    search = (request.args.get("q") or "").strip()[:64] or None
    sort = request.args.get("sort", "site")
    sort = sort if sort in SORT_KEYS else "site"
    descending = request.args.get("dir") == "desc"
    found = store.dashboard_page(
        site=site,
        state=state,
        version=version,
        search=search,
        sort=sort,
        descending=descending,
        page=_page_number(request.args.get("page")),
    )
    alerts_by_kiosk = store.open_alerts_of([k["kiosk_id"] for k in found.rows])
    for k in found.rows:
        k["alerts"] = alerts_by_kiosk.get(k["kiosk_id"], [])
    counts = {"online": 0, "offline": 0, "unknown": 0, **store.state_counts()}
    counts["alerting"] = store.alerting_count()
    site_counts = store.site_counts()
    return render_template(
        "dashboard.html",
        kiosks=found.rows,
        found=found,
        sites=site_counts,
        versions=store.versions(),
        site=site,
        state=state,
        version=version,
        search=search,
        sort=sort,
        descending=descending,
        counts=counts,
        total_kiosks=sum(s["kiosks"] for s in site_counts),
        open_alerts=store.open_alert_total(),
        connected=console().ingest.connected,
    )


@views.route("/kiosks/<kiosk_id>")
@login_required
def kiosk(kiosk_id: str) -> Any:
    store = console().store
    row = store.kiosk(kiosk_id)
    if row is None:
        abort(404)
    end = time.time()
    start = end - 86400
    series = store.telemetry_series(kiosk_id, since=start)
    limits = console().config.alerts
    charts = [
        line_chart(
            [(s["at"], s["cpu_temp_c"]) for s in series],
            start=start,
            end=end,
            title="Nhiệt độ CPU / CPU temperature",
            unit="°C",
            limit=limits.cpu_temp_c or None,
            y_min=20,
            y_max=90,
        ),
        line_chart(
            [(s["at"], s["disk_used_pct"]) for s in series],
            start=start,
            end=end,
            title="Ổ đĩa đã dùng / disk used",
            unit="%",
            limit=limits.disk_used_pct or None,
            y_max=100,
        ),
        line_chart(
            [(s["at"], s["outbox_depth"]) for s in series],
            start=start,
            end=end,
            title="Hàng đợi gửi / outbox depth",
            unit="tin / msgs",
        ),
    ]
    form = CommandForm()
    form.site.choices = [SelectChoice("", "—")]
    return render_template(
        "kiosk.html",
        k=row,
        charts=charts,
        events=store.events(kiosk_id=kiosk_id, limit=100),
        commands=store.commands(kiosk_id=kiosk_id, limit=30),
        records=store.records(kiosk_id=kiosk_id, limit=20),
        alerts=store.open_alerts(kiosk_id=kiosk_id),
        form=form,
        site_form=SiteForm(site=row["site"]),
        samples=len(series),
    )


@views.route("/kiosks/<kiosk_id>/site", methods=["POST"])
@login_required
def set_site(kiosk_id: str) -> Any:
    form = SiteForm()
    if form.validate_on_submit() and console().store.kiosk(kiosk_id):
        console().store.set_site(kiosk_id, (form.site.data or "").strip())  # validated: not empty
        logger.info("site set", extra={"kiosk": kiosk_id, "operator": g.operator})
    return redirect(url_for("views.kiosk", kiosk_id=kiosk_id))


@views.route("/commands", methods=["GET", "POST"])
@login_required
def commands() -> Any:
    store = console().store
    form = CommandForm()
    form.site.choices = [SelectChoice("", "—")] + [SelectChoice(s, s) for s in store.sites()]
    selected = (
        request.form.getlist("kiosk")
        if request.method == "POST"
        else (request.args.getlist("kiosk"))
    )
    error = None
    if request.method == "POST":
        back = local_target(request.form.get("back"), url_for("views.commands"))
        if form.validate_on_submit():
            kiosk_ids = list(dict.fromkeys(selected))
            if form.site.data:
                kiosk_ids += [
                    k["kiosk_id"]
                    for k in store.kiosks(site=form.site.data)
                    if k["kiosk_id"] not in kiosk_ids
                ]
            args_text = form.args.data or ""
            try:
                args = (
                    _json_object(args_text)
                    if args_text.strip()
                    else (dict(COMMANDS[form.name.data][1]))
                )
            except ValueError:
                error = "Tham số phải là một đối tượng JSON. / Args must be a JSON object."
            else:
                try:
                    sent = console().send_command(
                        g.handle, form.name.data, args, kiosk_ids=kiosk_ids, ttl_s=form.ttl.data
                    )
                except BadInput as err:
                    error = str(err)
                else:
                    flash(f"Đã gửi {len(sent)} lệnh / {len(sent)} command(s) sent", "ok")
                    return redirect(back)
        else:
            error = "Biểu mẫu không hợp lệ, hãy thử lại. / The form is not valid, try again."
    return render_template(
        "commands.html",
        form=form,
        kiosks=store.kiosks(),
        selected=set(selected),
        log=store.commands(limit=200),
        error=error,
    ), 400 if error else 200


def _json_object(text: str) -> dict[str, Any]:
    """A JSON object with finite numbers only (a kiosk's parser refuses NaN and Infinity);
    ValueError for anything else, nesting too deep for the parser included."""

    def finite(literal: str) -> float:
        number = float(literal)
        if not math.isfinite(number):
            raise ValueError(f"{literal} is out of range")
        return number

    def constant(literal: str) -> Any:
        raise ValueError(f"{literal} is not JSON")

    try:
        value = json.loads(text, parse_float=finite, parse_constant=constant)
    except RecursionError as err:
        raise ValueError("nested too deep") from err
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


@views.route("/commands/<command_id>")
@login_required
def command(command_id: str) -> Any:
    row = console().store.command(command_id)
    if row is None:
        abort(404)
    return render_template("command.html", c=row)


@views.route("/alerts")
@login_required
def alerts() -> Any:
    store = console().store
    return render_template(
        "alerts.html", open=store.open_alerts(), history=store.alert_history(limit=300)
    )


@views.route("/records")
@login_required
def records() -> Any:
    store = console().store
    return render_template(
        "records.html", records=store.records(limit=300), total=store.count_records()
    )


# What a bank notification needing attention is (docs/payments.md, "Needing attention").
NOTIFICATION_STATUS = {
    "confirmed": "Đã xác nhận / confirmed",
    "unmatched": "Không rõ mã thanh toán / unknown reference",
    "wrong_amount": "Sai số tiền / wrong amount",
    "wrong_account": "Sai tài khoản nhận / another account",
    "late": "Chuyển sau hạn / after the request expired",
    "already_paid": "Đã thanh toán trước đó / paid twice",
    "not_paid": "Ngân hàng báo không thành công / not successful",
}
METHODS = {
    "bank_transfer": "Chuyển khoản / bank transfer",
    "cash": "Tiền mặt / cash",
    "waived": "Miễn / waived",
}


@views.route("/payments")
@login_required
def payments() -> Any:
    """Fee receipts by day and kiosk with totals; bank notifications needing attention."""
    store = console().store
    day = request.args.get("day") or None
    if day is not None and not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", day):
        abort(400, description="Ngày không hợp lệ (YYYY-MM-DD). / Invalid day.")
    kiosk_id = request.args.get("kiosk") or None
    totals = store.fee_receipt_totals(day=day)
    if kiosk_id:
        totals = [t for t in totals if t["kiosk_id"] == kiosk_id]
    return render_template(
        "payments.html",
        day=day,
        kiosk=kiosk_id,
        totals=totals,
        receipts=store.fee_receipts(day=day, kiosk_id=kiosk_id, limit=300),
        attention=store.bank_notifications(attention=True),
        statuses=NOTIFICATION_STATUS,
        methods=METHODS,
        webhook_ready=getattr(console().payments, "checksum_key", lambda: None)() is not None,
    )


@views.route("/shipments", methods=["GET", "POST"])
@login_required
def shipments() -> Any:
    """Results by post: the operator records the Vietnam Post reference of a post request; the
    console sends it to the kiosk that took the request (docs/fleet.md, "Post shipments")."""
    from fleet.dossiers import ship

    store = console().store
    form = ShipmentForm(request_code=request.args.get("request", ""))
    error = None
    if form.validate_on_submit():
        try:
            done = ship(
                store,
                form.request_code.data or "",
                form.reference.data or "",
                form.status.data or "accepted",
                by=g.operator,
                by_name=g.operator_name,
            )
        except BadInput as err:
            error = str(err)
        else:
            if console().shipments is not None:
                console().shipments.kick()
            flash(
                f"Đã ghi mã bưu gửi {done['reference']}, gửi tới kiosk {done['kiosk']} / "
                "recorded, sent to the kiosk",
                "ok",
            )
            return redirect(url_for("views.shipments"))
    elif request.method == "POST":
        error = "Biểu mẫu không hợp lệ / the form is not valid"
    log = store.shipment_log(limit=300)
    sent = {line["detail"].get("row"): line for line in log if line["action"] != "post_shipment"}
    rows = [
        {**line, "sent": sent.get(line["row"])} for line in log if line["action"] == "post_shipment"
    ]
    return render_template(
        "shipments.html", form=form, rows=rows, error=error
    ), 400 if error else 200


@views.route("/revocations", methods=["GET", "POST"])
@login_required
def revocations() -> Any:
    form = RevokeForm()
    service = console().revocations
    error = None
    if request.method == "POST" and service is not None and form.validate_on_submit():
        value = (form.code.data or "").strip()
        kind = form.kind.data
        if request.form.get("push"):
            try:
                n = service.push(g.handle)
            except BadInput as err:
                error = str(err)
            else:
                flash(f"Đã gửi danh sách tới {n} kiosk / the list was sent to {n} kiosk(s)", "ok")
                return redirect(url_for("views.revocations"))
        elif not value:
            error = "Nhập mã bản sao hoặc số sê-ri. / Enter a copy code or a serial."
        elif kind == "certificate" and not re.fullmatch(r"[0-9a-fA-F]{1,40}", value):
            error = "Số sê-ri chứng thư là số hex. / A certificate serial is hexadecimal."
        else:
            value = value.lower() if kind == "certificate" else value.upper()
            fresh = service.revoke(
                value, reason=(form.reason.data or "").strip(), operator=g.operator, kind=kind
            )
            done = f"Đã thu hồi {value}" if fresh else f"{value} đã bị thu hồi trước đó"
            flash(done + "; đã phát tới mọi kiosk / published to every kiosk", "ok")
            return redirect(url_for("views.revocations"))
    elif request.method == "POST":
        error = "Biểu mẫu không hợp lệ / the form is not valid"
    return render_template(
        "revocations.html", form=form, rows=console().store.revocations(), error=error
    ), 400 if error else 200


@views.route("/revocations.json")
def revocation_list() -> Any:
    """Public: anyone verifying an e-copy may fetch the list (it holds codes only)."""
    service = getattr(console(), "revocations", None)
    if service is None:
        abort(404)
    return service.document()


@views.route("/provisioning", methods=["GET", "POST"])
@login_required
def provisioning() -> Any:
    form = TokenForm()
    token = None
    error = None
    if form.validate_on_submit():
        try:
            token = console().create_claim(
                (form.kiosk_id.data or "").strip().upper(),
                site=(form.site.data or "").strip(),
                serial=(form.serial.data or "").strip().lower(),
                created_by=g.operator,
            )
        except BadInput as err:
            error = f"Mã kiosk không hợp lệ / invalid kiosk id: {err}"
        except KioskError as err:
            logger.error("claim account not created", extra={"error": str(err)})
            error = "Không tạo được tài khoản nhận trên broker. / The broker account failed."
    return render_template(
        "provisioning.html",
        form=form,
        token=token,
        kiosk_id=form.kiosk_id.data,
        error=error,
        claims=console().store.claims(limit=100),
        enabled=console().config.provisioning.service_enabled,
    ), 400 if error else 200


@views.route("/queues", methods=["GET", "POST"])
@login_required
def queues() -> Any:
    """Today's queue figures per site and area from the kiosks' tickets; "call next" for the
    counters; a typed override, marked as such (docs/fleet-console.md, "Queue figures")."""
    from fleet.queues import report, today

    store = console().store
    form = QueueForm()
    form.site.choices = [SelectChoice(s, s) for s in store.sites()]
    error = None
    if form.validate_on_submit():
        site, serving = form.site.data, form.serving.data
        assert site is not None and serving is not None  # DataRequired; NumberRange refuses None
        try:
            n = report(
                console(),
                site,
                form.area.data or "",  # DataRequired
                serving=serving,
                avg_service_s=form.avg_service_s.data,
                counters_open=form.counters_open.data,
                priority_serving=form.priority_serving.data,
                by=g.operator,
            )
        except BadInput as err:
            error = str(err)
        else:
            flash(f"Đã gửi tới {n} kiosk / sent to {n} kiosk(s)", "ok")
            return redirect(url_for("views.queues"))
    elif request.method == "POST":
        error = "Biểu mẫu không hợp lệ / the form is not valid"
    day = today()
    return render_template(
        "queues.html",
        form=form,
        call_form=CallForm(),
        day=day,
        figures=store.ticket_figures(day),
        rows=store.queue_stats(),
        error=error,
    ), 400 if error else 200


@views.route("/queues/call", methods=["POST"])
@login_required
def call_next() -> Any:
    """A counter calls the next ticket of a site's area; the kiosks get the new figures."""
    from fleet.queues import call_next as call

    form = CallForm()
    if not form.validate_on_submit():
        abort(400, description="Biểu mẫu không hợp lệ / the form is not valid")
    try:
        number, n = call(console(), form.site.data or "", form.area.data or "", by=g.operator)
    except BadInput as err:
        abort(400, description=str(err))
    if number is None:
        flash("Không còn ai chờ / nobody is waiting", "ok")
    else:
        flash(f"Mời số {number} / calling {number}; đã gửi tới {n} kiosk", "ok")
    return redirect(url_for("views.queues"))


@views.route("/metrics")
def metrics() -> Any:
    """For a Prometheus scraper with the bearer token, or a logged-in operator; public only
    when the config says so (it names every kiosk and site)."""
    if not _metrics_allowed():
        logger.info("metrics refused", extra={"path": request.path})
        return Response(
            "401: log in, or send the bearer token (web.metrics_token_file)\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="kiosk-fleet"'},
            mimetype="text/plain",
        )
    body = exposition(console().store, console().ingest)
    return Response(body, mimetype=None, content_type=CONTENT_TYPE)


def _metrics_allowed() -> bool:
    if console().config.web.metrics_public:
        return True
    token = current_app.config["METRICS_TOKEN"]
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and given.strip():
        return hmac.compare_digest(given.strip().encode(), token.encode())
    return console().keys.operator_of(session.get("key")) is not None


@views.route("/healthz")
def healthz() -> Any:
    """The broker link, and which elected roles this worker holds (fleet/leader.py)."""
    ok = console().ingest.connected
    leadership = console().leadership
    return {
        "broker": ok,
        "worker": leadership.worker,
        "roles": leadership.held(),
        "database_session": leadership.status()["database"],
    }, 200 if ok else 503
