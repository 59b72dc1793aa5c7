"""Operators' login and logout, the login_required guard and safe redirect targets."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import HTTPException

from fleet.console import Console
from fleet.web.forms import LoginForm
from protocol.errors import BadInput

logger = logging.getLogger(__name__)


def console() -> Console:
    return current_app.extensions["fleet_console"]


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
    target = local_target(request.args.get("next"), url_for("views.dashboard"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            handle, op = console().keys.login(
                console().store,
                (form.operator.data or "").strip(),  # validated: not empty
                form.password.data or "",
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


def local_target(target: str | None, default: str) -> str:
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
