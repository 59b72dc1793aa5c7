"""The workstation's pages: login, the agency's queue, a request, decisions, admin, and the
public verification page. Personal data (names, pages, OCR text) is shown, never logged."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import segno
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
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # as fleet/web/forms.py
from wtforms.validators import DataRequired, Length, Optional, Regexp

from fleet.certify.accounts import LoginRefused, Officer, create_officer
from protocol.certify import REFUSAL_REASONS
from protocol.errors import BadInput, KioskError

logger = logging.getLogger(__name__)

desk = Blueprint("desk", __name__)
public = Blueprint("public", __name__)

REASONS = list(REFUSAL_REASONS.items())  # the digit keys 1..9 pick these in this order
SLA_LABELS = {
    "ok": ("Trong hạn", "on time"),
    "soon": ("Sắp đến hạn", "due soon"),
    "late": ("Quá hạn", "late"),
}
# The kiosk's checks (fleet shows unknown ones by their code): label, what the officer should
# look at.
# The kiosk's checks (edge/vision/checks, docs/page-checks.md): a label and what to look at.
FLAG_TEXTS: dict[str, tuple[str, str]] = {
    "forbidden_mark": (
        "Dấu cấm sao",
        "Bản chính có dấu mật hoặc ghi không được sao (Điều 22 NĐ 23/2015) / "
        "a secrecy or do-not-copy mark.",
    ),
    "photocopy": (
        "Nghi bản photo",
        "Không thấy mực màu như dấu đỏ / no coloured ink: maybe a photocopy.",
    ),
    "screen": ("Nghi ảnh màn hình", "Vân moiré, lưới điểm ảnh / moiré: maybe a screen."),
    "damage": (
        "Nghi tẩy xóa, hư hỏng",
        "Vết tẩy xóa, lỗ hoặc rách: xem kỹ bản chính / erasure, hole or tear.",
    ),
    "qr": ("QR trên bản chính", "Mã QR in trên giấy tờ / a QR code printed on the original."),
    "blur": ("Ảnh mờ", "Kiểm tra từng trang đọc được / check every page is legible."),
    "dark": ("Ảnh tối", "Kiểm tra từng trang đọc được / check every page is legible."),
    "checks": (
        "Kiểm tra tự động lỗi",
        "Ki-ốt không kiểm tra được bản chính này: xem kỹ / the kiosk's checks failed.",
    ),
}
STATUS_TEXTS = {
    "valid": ("Bản sao hợp lệ", "Valid certified copy"),
    "refused": ("Yêu cầu đã bị từ chối", "The request was refused"),
    "revoked": ("Bản sao đã bị thu hồi", "The copy has been revoked"),
    "unknown": ("Không tìm thấy mã này", "Unknown code"),
}
CODE = re.compile(r"^[A-Za-z0-9-]{4,64}$")


def _desk() -> Any:
    return current_app.extensions["certify_desk"]


# -- formatting -----------------------------------------------------------------------------


def _when(value: float | None, fmt: str = "%H:%M %d/%m/%Y") -> str:
    if value is None:
        return ""
    zone = ZoneInfo(_desk().config.zone)
    return dt.datetime.fromtimestamp(float(value), tz=zone).strftime(fmt)


def _flag(flag: Any) -> dict[str, str]:
    """A kiosk flag (edge.vision.checks Flag.as_dict(): check, page, score, detail) as code,
    label, explanation."""
    if isinstance(flag, dict):
        code = str(flag.get("check") or flag.get("code") or "?")
        facts = [f"trang/page {flag['page']}"] if flag.get("page") else []
        # params: the values the kiosk's message names, as found ("MẬT", not the rule "mat").
        given = flag.get("params")
        params: dict[str, Any] = given if isinstance(given, dict) else {}
        found = flag.get("detail")
        shown = {**found, **params} if isinstance(found, dict) else dict(params)
        if shown:
            facts += [f"{k}: {v}" for k, v in shown.items() if isinstance(v, str | int | float)]
        elif found and not isinstance(found, dict):
            facts.append(str(found))
        detail = "; ".join(facts)
    else:
        code, detail = str(flag), ""
    label, why = FLAG_TEXTS.get(code, (code, ""))
    return {"code": code, "label": label, "why": " ".join(p for p in (why, detail) if p)}


FILTERS: dict[str, Callable[..., Any]] = {"when": _when, "flag": _flag}


# -- sessions -------------------------------------------------------------------------------


def _remote() -> str:
    return request.remote_addr or "-"


def _audit(officer: str, action: str, **detail: Any) -> None:
    request_id = detail.pop("request_id", None)
    _desk().store.audit(
        officer,
        action,
        at=time.time(),
        remote_addr=_remote(),
        request_id=request_id,
        detail=detail,
    )


def login_required(role: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            d = _desk()
            handle = session.get("h")
            officer: Officer | None = d.sessions.get(handle)
            row = d.store.officer(officer.username) if officer else None
            if officer is None or row is None or not row["active"]:
                d.sessions.close(handle)
                session.clear()
                if request.headers.get("X-Requested-With") == "fetch":
                    abort(401)
                return redirect(url_for("desk.login"))
            if role is not None and officer.role != role:
                abort(403)
            g.officer = officer
            g.handle = handle
            return view(*args, **kwargs)

        return wrapped

    return wrap


class LoginForm(FlaskForm):
    username = StringField("Tên đăng nhập / username", [DataRequired(), Length(max=64)])
    password = PasswordField("Mật khẩu / password", [DataRequired(), Length(max=256)])
    code = StringField(
        "Mã xác thực 6 số / 6-digit code", [DataRequired(), Regexp(r"^\s*\d{3}\s?\d{3}\s*$")]
    )
    pin = PasswordField("PIN thiết bị ký / signing token PIN", [Optional(), Length(max=64)])


@desk.route("/login", methods=["GET", "POST"])
def login() -> Any:
    d = _desk()
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        username = (form.username.data or "").strip().lower()
        try:
            officer = d.accounts.login(
                username, form.password.data or "", form.code.data or "", address=_remote()
            )
            if officer.role == "officer" and not form.pin.data:
                raise LoginRefused("an officer's login needs the signing token's PIN")
        except LoginRefused as err:
            _audit(username[:64] or "-", "login_failed", reason=str(err)[:80])
            logger.warning("desk login refused")
            error = _login_message(str(err))
        else:
            session.clear()
            session.permanent = True
            session["h"] = d.sessions.open(officer, form.pin.data or "")
            _audit(officer.username, "login")
            target = "desk.queue" if officer.role == "officer" else "desk.admin"
            return redirect(url_for(target))
    elif request.method == "POST":
        error = "Điền đủ các ô (mã 6 số). / Fill in every field (a 6-digit code)."
    return render_template("login.html", form=form, error=error), 401 if error else 200


def _login_message(reason: str) -> str:
    if reason.startswith("too many"):
        return "Đăng nhập sai quá nhiều lần, vui lòng chờ. / Too many attempts, please wait."
    if reason.startswith("locked"):
        return "Tài khoản tạm khóa do đăng nhập sai 5 lần. / Account locked after 5 failed logins."
    if "PIN" in reason:
        return "Cán bộ chứng thực cần nhập PIN thiết bị ký. / Officers must give the token PIN."
    return "Sai tên đăng nhập, mật khẩu hoặc mã xác thực. / Wrong username, password or code."


@desk.route("/logout", methods=["POST"])
def logout() -> Any:
    officer = _desk().sessions.close(session.get("h"))
    if officer is not None:
        _audit(officer.username, "logout")
    session.clear()
    return redirect(url_for("desk.login"))


@desk.route("/")
@login_required()
def home() -> Any:
    return redirect(url_for("desk.queue" if g.officer.role == "officer" else "desk.admin"))


# -- queue and request ----------------------------------------------------------------------


@desk.route("/queue")
@login_required("officer")
def queue() -> Any:
    items = _desk().certifier.queue(g.officer.agency)
    counts = {k: sum(1 for i in items if i.sla == k) for k in SLA_LABELS}
    template = "_queue_rows.html" if request.args.get("rows") else "queue.html"
    return render_template(
        template,
        items=items,
        counts=counts,
        sla_labels=SLA_LABELS,
        refresh_s=_desk().config.queue_refresh_s,
    )


class _Views:
    """Requests' views (pages, OCR, fields) for a minute in this process's memory: the request
    screen, its page images and the next request's prefetch read them once from the store."""

    def __init__(self, ttl_s: float = 60.0, size: int = 16) -> None:
        self.ttl_s, self.size = ttl_s, size
        self._items: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, certifier: Any, request_id: str) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(request_id)
            if hit is not None and now - hit[0] < self.ttl_s:
                return hit[1]
        view = certifier.request(request_id)
        with self._lock:
            for key in [k for k, v in self._items.items() if now - v[0] >= self.ttl_s]:
                del self._items[key]
            while len(self._items) >= self.size:
                del self._items[min(self._items, key=lambda k: self._items[k][0])]
            if view is not None:
                self._items[request_id] = (now, view)
        return view

    def drop(self, request_id: str) -> None:
        with self._lock:
            self._items.pop(request_id, None)


def _views() -> _Views:
    return current_app.extensions.setdefault("certify_views", _Views())


def page_jpegs(view: Any) -> list[bytes]:
    """The request's page images (RequestView.page_jpegs in the Certifier's API)."""
    return list(view.page_jpegs)


def _neighbours(request_id: str) -> tuple[list[Any], int]:
    items = _desk().certifier.queue(g.officer.agency)
    index = next((i for i, it in enumerate(items) if it.id == request_id), -1)
    return items, index


@desk.route("/requests/<request_id>")
@login_required("officer")
def request_screen(request_id: str) -> Any:
    items, index = _neighbours(request_id)
    if index < 0:
        flash("Yêu cầu này không còn chờ. / This request is no longer waiting.", "info")
        return redirect(url_for("desk.queue"))
    view = _views().get(_desk().certifier, request_id)
    if view is None:
        abort(404)
    following = items[index + 1] if index + 1 < len(items) else None
    if following is not None:
        _views().get(_desk().certifier, following.id)  # warm for its screen and pages
    return render_template(
        "request.html",
        item=items[index],
        view=view,
        pages=len(page_jpegs(view)),
        position=index + 1,
        total=len(items),
        previous=items[index - 1] if index > 0 else None,
        following=following,
        reasons=REASONS,
        sla_labels=SLA_LABELS,
    )


@desk.route("/requests/<request_id>/pages/<int:number>.jpg")
@login_required("officer")
def page_image(request_id: str, number: int) -> Any:
    _, index = _neighbours(request_id)
    if index < 0:
        abort(404)
    view = _views().get(_desk().certifier, request_id)
    jpegs = page_jpegs(view) if view is not None else []
    if not 1 <= number <= len(jpegs):
        abort(404)
    response = Response(jpegs[number - 1], mimetype="image/jpeg")
    # Kept by this browser only, briefly: the prefetched next request shows at once.
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


def _after_decision(request_id: str) -> Any:
    _views().drop(request_id)
    items, _ = _neighbours("")
    if not items:
        return redirect(url_for("desk.queue"))
    return redirect(url_for("desk.request_screen", request_id=items[0].id))


def _decide(request_id: str, action: str, call: Callable[[], Any]) -> Any:
    _, index = _neighbours(request_id)
    if index < 0:
        flash("Yêu cầu này không còn chờ. / This request is no longer waiting.", "info")
        return redirect(url_for("desk.queue"))
    try:
        result = call()
    except KioskError as err:
        logger.warning("decision failed", extra={"action": action, "error": type(err).__name__})
        flash(f"Không thực hiện được: {err} / Could not {action}.", "error")
        return redirect(url_for("desk.request_screen", request_id=request_id))
    if action == "approve":
        flash(f"Đã chứng thực, số {result.number}, sổ {result.book}. / Certified.", "ok")
    elif action == "refuse":
        flash("Đã từ chối. / Refused.", "ok")
    else:
        flash("Đã mời công dân gặp cán bộ. / Citizen asked to see staff.", "ok")
    return _after_decision(request_id)


@desk.route("/requests/<request_id>/approve", methods=["POST"])
@login_required("officer")
def approve(request_id: str) -> Any:
    pin = _desk().sessions.pin(g.handle) or ""
    return _decide(
        request_id,
        "approve",
        lambda: _desk().certifier.approve(
            request_id, g.officer.username, pin=pin, remote_addr=_remote()
        ),
    )


@desk.route("/requests/<request_id>/refuse", methods=["POST"])
@login_required("officer")
def refuse(request_id: str) -> Any:
    code = request.form.get("reason", "")
    text = (request.form.get("text") or "").strip()[:500]
    if code not in REFUSAL_REASONS or (code == "other" and not text):
        flash("Chọn lý do (lý do khác cần ghi rõ). / Pick a reason (describe 'other').", "error")
        return redirect(url_for("desk.request_screen", request_id=request_id))
    return _decide(
        request_id,
        "refuse",
        lambda: _desk().certifier.refuse(
            request_id,
            g.officer.username,
            reason_code=code,
            reason_text=text,
            remote_addr=_remote(),
        ),
    )


@desk.route("/requests/<request_id>/see-staff", methods=["POST"])
@login_required("officer")
def see_staff(request_id: str) -> Any:
    note = (request.form.get("note") or "").strip()[:500]
    return _decide(
        request_id,
        "see_staff",
        lambda: _desk().certifier.see_staff(
            request_id, g.officer.username, note=note, remote_addr=_remote()
        ),
    )


# -- admin ----------------------------------------------------------------------------------


class OfficerForm(FlaskForm):
    username = StringField("Tên đăng nhập / username", [DataRequired(), Length(max=64)])
    full_name = StringField("Họ và tên / full name", [DataRequired(), Length(max=128)])
    title = StringField("Chức danh / title", [DataRequired(), Length(max=128)])
    role = SelectField(
        "Vai trò / role",
        choices=[
            SelectChoice("officer", "Cán bộ chứng thực / officer"),
            SelectChoice("admin", "Quản trị / admin"),
        ],
    )
    password = PasswordField("Mật khẩu ban đầu / first password", [DataRequired()])
    token_label = StringField("Nhãn thiết bị ký / token label", [Optional(), Length(max=64)])
    key_label = StringField("Nhãn khóa / key label", [Optional(), Length(max=64)])


def qr_svg(uri: str) -> str:
    """The provisioning URI as an SVG data URI (CSP: img-src data:)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=4, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


@desk.route("/admin", methods=["GET", "POST"])
@login_required("admin")
def admin() -> Any:
    d = _desk()
    form = OfficerForm()
    shown = None
    if form.validate_on_submit():
        try:
            uri = create_officer(
                d.store,
                (form.username.data or "").strip().lower(),
                full_name=form.full_name.data or "",
                title=form.title.data or "",
                agency=g.officer.agency,
                role=form.role.data or "officer",
                password=form.password.data or "",
                token_label=(form.token_label.data or "").strip(),
                key_label=(form.key_label.data or "").strip(),
            )
        except BadInput as err:
            flash(f"Không tạo được: {err}", "error")
        else:
            _audit(
                g.officer.username, "officer_add", target=form.username.data, role=form.role.data
            )
            shown = {"username": form.username.data, "uri": uri, "qr": qr_svg(uri)}
            form = OfficerForm(formdata=None)
    return render_template(
        "admin.html", form=form, officers=d.store.officers(g.officer.agency), shown=shown
    )


@desk.route("/admin/officers/<username>/disable", methods=["POST"])
@login_required("admin")
def disable_officer(username: str) -> Any:
    d = _desk()
    row = d.store.officer(username)
    if row is None or row["agency"] != g.officer.agency:
        abort(404)
    if username == g.officer.username:
        flash("Không tự khóa tài khoản của mình. / You cannot disable yourself.", "error")
        return redirect(url_for("desk.admin"))
    d.store.update_officer(username, active=False)
    d.sessions.close_officer(username)
    _audit(g.officer.username, "officer_disable", target=username)
    flash(f"Đã khóa {username}. / Disabled.", "ok")
    return redirect(url_for("desk.admin"))


@desk.route("/admin/audit")
@login_required("admin")
def audit_log() -> Any:
    rows = _desk().store.audit_log(agency=g.officer.agency, limit=500)
    return render_template("audit.html", rows=rows)


@desk.route("/admin/book")
@login_required("admin")
def book() -> Any:
    today = dt.datetime.now(ZoneInfo(_desk().config.zone)).date()
    try:
        year = int(request.args.get("year") or today.year)
        month = int(request.args["month"]) if request.args.get("month") else None
        day = int(request.args["day"]) if request.args.get("day") else None
    except ValueError:
        abort(400)
    fmt = request.args.get("fmt", "")
    certifier = _desk().certifier
    if fmt in ("csv", "pdf"):
        data = certifier.export(g.officer.agency, year=year, month=month, day=day, fmt=fmt)
        _audit(g.officer.username, "book_export", year=year, month=month, day=day, fmt=fmt)
        name = f"so-chung-thuc-{g.officer.agency}-{year}{f'-{month:02d}' if month else ''}.{fmt}"
        return Response(
            data,
            mimetype="text/csv" if fmt == "csv" else "application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    entries = certifier.book(g.officer.agency, year=year, month=month, day=day)
    return render_template("book.html", entries=entries, year=year, month=month, day=day)


# -- public verification --------------------------------------------------------------------


@public.route("/v/<code>")
@public.route("/V/<code>")
@public.route("/v/<code>/<path:rest>")
@public.route("/V/<code>/<path:rest>")
def verify(code: str, rest: str = "") -> Any:
    found = None
    if CODE.match(code):
        found = _desk().certifier.verification(code.upper())
    status = getattr(found, "status", None) or "unknown"
    thumb = None
    if found is not None and status == "valid" and getattr(found, "thumbnail", None):
        thumb = "data:image/jpeg;base64," + base64.b64encode(found.thumbnail).decode()
    response = Response(
        render_template(
            "verify.html",
            code=code.upper() if CODE.match(code) else "",
            found=found,
            status=status,
            texts=STATUS_TEXTS[status] if status in STATUS_TEXTS else STATUS_TEXTS["unknown"],
            thumb=thumb,
        ),
        status=200 if found is not None else 404,
    )
    return response
