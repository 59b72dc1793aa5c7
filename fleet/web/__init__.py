"""The console's web dashboard (Flask app factory; the Console is handed in)."""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import json
import logging
import math
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
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
from flask_wtf import CSRFProtect, FlaskForm
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from wtforms import IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from fleet.alerts import LABELS, RULES
from fleet.console import COMMANDS, Console
from fleet.metrics import CONTENT_TYPE, exposition
from fleet.web.charts import line_chart
from protocol.errors import BadInput, ConfigError, KioskError

logger = logging.getLogger(__name__)
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
csrf = CSRFProtect()


def create_app(console: Console, *, testing: bool = False) -> Flask:
    app = Flask(__name__)
    web = console.config.web
    app.config.update(
        SECRET_KEY=_secret_key(web.secret_key_file),
        SESSION_COOKIE_SECURE=web.cookie_secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(minutes=web.session_minutes),
        WTF_CSRF_TIME_LIMIT=None,  # the session's own lifetime bounds the token
        TESTING=testing,
        METRICS_TOKEN=_metrics_token(web.metrics_token_file),
    )
    if web.proxy_hops:
        # The client's address (login throttling) and scheme as the TLS proxy saw them.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=web.proxy_hops, x_proto=web.proxy_hops
        )
    app.extensions["fleet_console"] = console
    csrf.init_app(app)
    app.register_blueprint(auth)
    app.register_blueprint(views)
    app.jinja_env.filters.update(when=_when, ago=_ago, pretty=_pretty, days_left=_days_left)
    app.jinja_env.globals.update(RULES=RULES, RULE_LABELS=LABELS)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint != "static":
            # Pages show fleet state and operators' names: never kept by a browser or proxy.
            response.headers["Cache-Control"] = "no-store"
        return response

    return app


def _metrics_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"web.metrics_token_file: cannot read {path}: {err}") from err
    if not token:
        raise ConfigError(f"web.metrics_token_file: {path} is empty")
    return token


def _secret_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key


def console() -> Console:
    return current_app.extensions["fleet_console"]


# --- filters ------------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    if not ts:
        return "—"
    return dt.datetime.fromtimestamp(ts, ZONE).strftime("%d/%m %H:%M:%S")


def _ago(ts: float | None) -> str:
    if not ts:
        return "—"
    s = max(0, int(time.time() - ts))
    if s < 60:
        return f"{s} giây"
    if s < 3600:
        return f"{s // 60} phút"
    if s < 86400:
        return f"{s // 3600} giờ {s % 3600 // 60} phút"
    return f"{s // 86400} ngày"


def _days_left(ts: float | None) -> str:
    if not ts:
        return "—"
    return f"{(ts - time.time()) / 86400:.0f} ngày"


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True)


# --- forms --------------------------------------------------------------------------------


class LoginForm(FlaskForm):
    operator = StringField("Tên đăng nhập / operator", [DataRequired(), Length(max=64)])
    password = PasswordField("Mật khẩu / password", [DataRequired(), Length(max=256)])


class CommandForm(FlaskForm):
    name = SelectField(
        "Lệnh / command", choices=[SelectChoice(k, v[0]) for k, v in COMMANDS.items()]
    )
    site = SelectField("Cả điểm / whole site", choices=[], validate_choice=False)
    args = TextAreaField("Tham số JSON / args (JSON)", [Optional(), Length(max=60000)])
    ttl = IntegerField(
        "Hiệu lực (giây) / valid for (s)", [Optional(), NumberRange(min=10, max=86400)]
    )


class RevokeForm(FlaskForm):
    kind = SelectField(
        "Thu hồi / revoke",
        choices=[
            SelectChoice("code", "Một bản sao (mã) / one copy (code)"),
            SelectChoice("certificate", "Chứng thư ký của kiosk (sê-ri) / a signing certificate"),
        ],
    )
    code = StringField("Mã hoặc sê-ri / code or serial", [Optional(), Length(max=64)])
    reason = StringField("Lý do / reason", [Optional(), Length(max=200)])


class TokenForm(FlaskForm):
    kiosk_id = StringField("Mã kiosk / kiosk id", [DataRequired(), Length(max=32)])
    site = StringField("Điểm / site", [Optional(), Length(max=128)])
    serial = StringField("Số sê-ri thiết bị / device serial", [Optional(), Length(max=64)])


class QueueForm(FlaskForm):
    site = SelectField("Điểm / site", choices=[], validate_choice=False)
    area = StringField("Khu vực / area", [DataRequired(), Length(min=1, max=1)])
    serving = IntegerField("Đang phục vụ số / now serving", [NumberRange(min=0, max=9999)])
    avg_service_s = IntegerField(
        "Thời gian TB (giây) / avg service (s)", [Optional(), NumberRange(min=0, max=36000)]
    )
    counters_open = IntegerField(
        "Quầy mở / counters open", [Optional(), NumberRange(min=0, max=100)]
    )


class SiteForm(FlaskForm):
    site = StringField("Điểm / site", [DataRequired(), Length(max=128)])


# --- login --------------------------------------------------------------------------------

auth = Blueprint("auth", __name__)


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        handle = session.get("key")
        operator = console().keys.operator_of(handle)
        row = console().store.operator(operator) if operator else None
        if row is None or row["disabled"] or operator != session.get("operator"):
            console().keys.logout(handle)
            session.clear()
            return redirect(url_for("auth.login", next=request.full_path))
        g.operator = operator
        g.operator_name = session.get("name", operator)
        g.handle = handle
        return view(*args, **kwargs)

    return wrapped


@auth.route("/login", methods=["GET", "POST"])
def login() -> Any:
    target = _local_target(request.args.get("next"), url_for("views.dashboard"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            handle, op = console().keys.login(
                console().store,
                form.operator.data.strip(),
                form.password.data,
                address=request.remote_addr or "-",
            )
        except BadInput as err:
            logger.warning("login refused", extra={"reason": str(err)})
            error = _login_message(str(err))
        else:
            session.clear()
            session.permanent = True
            session.update(key=handle, operator=op.id, name=op.name)
            logger.info("operator logged in", extra={"operator": op.id})
            return redirect(target)
    return render_template("login.html", form=form, error=error), 401 if error else 200


def _login_message(reason: str) -> str:
    if reason.startswith("too many"):
        return "Sai mật khẩu quá nhiều lần, vui lòng chờ vài phút. / Too many attempts, wait."
    return "Sai tên đăng nhập hoặc mật khẩu. / Wrong operator or password."


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NOT_TARGETS = {"static", "auth.login", "auth.logout"}


def _local_target(target: str | None, default: str) -> str:
    """The URL of one of the console's own pages that `target` names, built here (never the
    input echoed), else `default`; a control character is refused (400)."""
    if not target:
        return default
    if _CONTROL.search(target):
        logger.warning("bad redirect target", extra={"path": request.path})
        abort(400, description="Địa chỉ chuyển tiếp không hợp lệ. / Invalid redirect target.")
    parts = urlsplit(target)
    path = unquote(parts.path)
    if parts.scheme or parts.netloc or "\\" in path or not path.startswith("/"):
        return default
    try:
        endpoint, args = current_app.url_map.bind("console").match(path, method="GET")
    except HTTPException:  # no such page, not a GET page, or a redirect
        return default
    if endpoint in _NOT_TARGETS:
        return default
    url = url_for(endpoint, **args)
    query = parse_qsl(parts.query, keep_blank_values=True)
    return f"{url}?{urlencode(query)}" if query else url


@auth.route("/logout", methods=["POST"])
def logout() -> Any:
    console().keys.logout(session.get("key"))
    session.clear()
    return redirect(url_for("auth.login"))


# --- pages --------------------------------------------------------------------------------

views = Blueprint("views", __name__)

SORTS = {
    "kiosk": lambda k: k["kiosk_id"],
    "site": lambda k: (k["site"], k["kiosk_id"]),
    "state": lambda k: (k["state"] != "offline", k["state_since"]),
    "paper": lambda k: {"out": 0, "near-end": 1}.get(k["paper"] or "", 2),
    "temp": lambda k: -(k["cpu_temp_c"] or -999),
    "disk": lambda k: -(k["disk_used_pct"] or -1),
    "outbox": lambda k: -(k["outbox_depth"] or 0),
    "seen": lambda k: k["last_seen"],
    "cert": lambda k: k["cert_not_after"] or float("inf"),
    "alerts": lambda k: -k["alert_count"],
}


@views.route("/")
@login_required
def dashboard() -> Any:
    store = console().store
    site = request.args.get("site") or None
    state = request.args.get("state") or None
    sort = request.args.get("sort", "site")
    rows = store.kiosks(site=site)
    alerts_by_kiosk: dict[str, list[dict[str, Any]]] = {}
    for a in store.open_alerts():
        alerts_by_kiosk.setdefault(a["kiosk_id"], []).append(a)
    for k in rows:
        k["alerts"] = alerts_by_kiosk.get(k["kiosk_id"], [])
        k["alert_count"] = len(k["alerts"])
    if state:
        rows = [k for k in rows if k["state"] == state]
    rows.sort(key=SORTS.get(sort, SORTS["site"]), reverse=request.args.get("dir") == "desc")
    counts = {"online": 0, "offline": 0, "unknown": 0, **store.state_counts()}
    return render_template(
        "dashboard.html",
        kiosks=rows,
        sites=store.sites(),
        site=site,
        state=state,
        sort=sort,
        counts=counts,
        open_alerts=sum(len(v) for v in alerts_by_kiosk.values()),
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
        console().store.set_site(kiosk_id, form.site.data.strip())
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
        back = _local_target(request.form.get("back"), url_for("views.commands"))
        if form.validate_on_submit():
            kiosk_ids = list(dict.fromkeys(selected))
            if form.site.data:
                kiosk_ids += [
                    k["kiosk_id"]
                    for k in store.kiosks(site=form.site.data)
                    if k["kiosk_id"] not in kiosk_ids
                ]
            try:
                args = (
                    _json_object(form.args.data)
                    if (form.args.data or "").strip()
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
                form.kiosk_id.data.strip().upper(),
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
    from fleet.queues import report

    store = console().store
    form = QueueForm()
    form.site.choices = [SelectChoice(s, s) for s in store.sites()]
    error = None
    if form.validate_on_submit():
        try:
            n = report(
                console(),
                form.site.data,
                form.area.data,
                serving=form.serving.data,
                avg_service_s=form.avg_service_s.data,
                counters_open=form.counters_open.data,
                by=g.operator,
            )
        except BadInput as err:
            error = str(err)
        else:
            flash(f"Đã gửi tới {n} kiosk / sent to {n} kiosk(s)", "ok")
            return redirect(url_for("views.queues"))
    elif request.method == "POST":
        error = "Biểu mẫu không hợp lệ / the form is not valid"
    return render_template(
        "queues.html", form=form, rows=store.queue_stats(), error=error
    ), 400 if error else 200


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
    ok = console().ingest.connected
    return {"broker": ok}, 200 if ok else 503
