"""Flow F, results by post: which dossier or copy -> delivery address -> check -> sent to central
with a printed confirmation."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, redirect, request, session, url_for

from edge.errors import BadInput
from web_ui.forms import AddressForm, SubjectForm
from web_ui.i18n import current_lang, refusal, translate
from web_ui.kiosk import end_flow, guard, kiosk, screen

logger = logging.getLogger(__name__)
bp = Blueprint("post", __name__, url_prefix="/f")
KEY = "post"


def _draft() -> dict[str, Any]:
    return session.setdefault(KEY, {})


@bp.route("/", methods=["GET", "POST"])
@guard("post")
def start() -> Any:
    form = SubjectForm(data=_draft().get("subject"))
    if form.validate_on_submit():
        _draft()["subject"] = {"subject_type": form.subject_type.data, "code": form.code.data}
        session.modified = True
        return redirect(url_for("post.address"))
    return screen("post/subject.html", flow="post", step=1, form=form)


@bp.route("/address", methods=["GET", "POST"])
@guard("post")
def address() -> Any:
    draft = _draft()
    if "subject" not in draft:
        return redirect(url_for("post.start"))
    form = AddressForm(data=draft.get("address"))
    provinces = kiosk().post.provinces()
    problems: dict[str, str] = {}
    if "post_problem" in session:
        problems["form"] = session.pop("post_problem")
    if form.validate_on_submit():
        fields = {
            "recipient_name": form.recipient.data,
            "phone": form.phone.data,
            "province": form.province.data,
            "ward": form.ward.data,
            "street": form.street.data,
        }
        try:
            kiosk().post.validate(
                subject_type=draft["subject"]["subject_type"],
                subject_code=draft["subject"]["code"],
                **fields,
            )
        except BadInput as err:
            texts = getattr(err, "texts", None)  # field -> Text (AddressInvalid)
            problems = (
                {name: translate(text) for name, text in texts.items()}
                if texts
                else {"form": refusal(err)}
            )
            logger.info("delivery address refused", extra={"fields": sorted(problems)})
        else:
            draft["address"] = {
                "recipient": form.recipient.data,
                "phone": form.phone.data,
                "province": form.province.data,
                "ward": form.ward.data,
                "street": form.street.data,
            }
            session.modified = True
            return redirect(url_for("post.confirm"))
    return screen(
        "post/address.html",
        flow="post",
        step=2,
        form=form,
        provinces=provinces,
        problems=problems,
    )


@bp.route("/confirm", methods=["GET", "POST"])
@guard("post")
def confirm() -> Any:
    draft = _draft()
    if "address" not in draft:
        return redirect(url_for("post.address"))
    if request.method == "POST":
        a = draft["address"]
        try:
            sent = kiosk().post.submit(
                lang=current_lang(),
                subject_type=draft["subject"]["subject_type"],
                subject_code=draft["subject"]["code"],
                recipient_name=a["recipient"],
                phone=a["phone"],
                province=a["province"],
                ward=a["ward"],
                street=a["street"],
            )
        except BadInput as err:
            session["post_problem"] = refusal(err)
            return redirect(url_for("post.address"))
        end_flow("post")
        session["post_done"] = {
            "short_id": sent.short_id,
            "printed": bool(sent.printed and sent.printed.printed),
        }
        return redirect(url_for("post.done"))
    return screen("post/confirm.html", flow="post", step=3, d=draft)


@bp.get("/done")
def done() -> Any:
    sent = session.get("post_done")
    if sent is None:
        return redirect(url_for("home.index"))
    return screen("post/done.html", flow="post", step=3, sent=sent)


@bp.post("/finish")
def finish() -> Any:
    end_flow("post")
    return redirect(url_for("home.index"))
