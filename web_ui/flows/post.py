"""Flow F, results by post: which dossier or copy -> (a dossier: the citizen identifies with card
and face, as for an e-copy, and central confirms the dossier is theirs) -> delivery address ->
check -> sent to central with a printed confirmation."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, redirect, request, session, url_for

from edge.errors import BadInput
from edge.services.dossier import OwnerCheckUnavailable, extract_code
from web_ui.forms import AddressForm, SubjectForm
from web_ui.i18n import current_lang, refusal, translate
from web_ui.kiosk import end_flow, guard, kiosk, screen

logger = logging.getLogger(__name__)
bp = Blueprint("post", __name__, url_prefix="/f")
KEY = "post"
ECOPY_KEY = "ecopy"  # the identification's session (web_ui.flows.ecopy.KEY)


def _draft() -> dict[str, Any]:
    return session.setdefault(KEY, {})


@bp.route("/", methods=["GET", "POST"])
@guard("post")
def start() -> Any:
    draft = _draft()
    form = SubjectForm(data=draft.get("subject"))
    problem = session.pop("post_owner_problem", None)
    if form.validate_on_submit():
        draft["subject"] = {"subject_type": form.subject_type.data, "code": form.code.data}
        draft.pop("owner", None)  # a new subject is checked again
        session.modified = True
        if form.subject_type.data != "dossier":
            draft.pop("identifying", None)
            _drop_identity()
            return redirect(url_for("post.address"))
        try:
            extract_code(form.code.data or "")
        except BadInput as err:
            problem = refusal(err)
        else:
            # Only the dossier's owner may have its result sent: identify first (the e-copy
            # identification, which comes back to post.owner), then central decides.
            _drop_identity()
            draft["identifying"] = True
            return redirect(url_for("ecopy.identify"))
    return screen("post/subject.html", flow="post", step=1, form=form, problem=problem)


def _drop_identity() -> None:
    """The identification made for this request ends: card data and face data go."""
    work = session.pop(ECOPY_KEY, None)
    if work is not None:
        work.close()


def identifying() -> bool:
    """The e-copy identification runs for a post request (web_ui.flows.ecopy asks)."""
    return bool(session.get(KEY, {}).get("identifying"))


@bp.get("/owner")
@guard("post")
def owner() -> Any:
    """After identification: central says whether the dossier belongs to the card read. The ID
    number goes only into the proof (edge.services.dossier.owner_proof), then is dropped."""
    draft = _draft()
    work = session.get(ECOPY_KEY)
    draft.pop("identifying", None)
    session.modified = True
    card = getattr(getattr(work, "identity", None), "card", None)
    if "subject" not in draft or work is None or not work.verified or card is None:
        _drop_identity()
        return redirect(url_for("post.start"))
    try:
        dossiers = kiosk().dossiers
        if dossiers is None:  # the dossier service is off: nobody can confirm the owner
            raise OwnerCheckUnavailable("off")
        dossiers.check_owner(
            draft["subject"]["code"], card.id_number, session_id=getattr(session, "sid", "kiosk")
        )
    except BadInput as err:
        session["post_owner_problem"] = refusal(err)
        logger.info("post refused before the address", extra={"why": getattr(err, "code", "")})
        return redirect(url_for("post.start"))
    finally:
        _drop_identity()
    draft["owner"] = True
    return redirect(url_for("post.address"))


@bp.route("/address", methods=["GET", "POST"])
@guard("post")
def address() -> Any:
    draft = _draft()
    if "subject" not in draft:
        return redirect(url_for("post.start"))
    if draft["subject"]["subject_type"] == "dossier" and not draft.get("owner"):
        return redirect(url_for("post.start"))  # no address before central confirmed the owner
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
    if "address" not in draft or (
        draft["subject"]["subject_type"] == "dossier" and not draft.get("owner")
    ):
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
