"""Forms: CSRF-protected (Flask-WTF), every field bounded, messages in the citizen's language."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from flask import request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, RadioField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from edge.text import clean_typed

MARKUP = re.compile(r"[<>{}\[\]\\`$]")


def plain_text(form: Any, field: Any) -> None:
    """No markup, no control characters: names, addresses and codes never need them."""
    value = field.data or ""
    if MARKUP.search(value):
        raise ValidationError(_l("Please do not use the characters < > { } [ ] \\ ` $."))
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") for c in value):
        raise ValidationError(_l("The text contains characters that are not allowed."))


def nfc(value: Any) -> Any:
    """Typed text as edge.text.clean_typed leaves it: a zero-width space or bidi mark nobody
    sees is dropped here, not refused by plain_text with a message about invisible text;
    other control characters stay, for plain_text to refuse."""
    if isinstance(value, str):
        return clean_typed(value, controls="keep")
    return value


class ScreenForm(FlaskForm):
    """A form of a screen: filled from the posted form only. Flask-WTF would also read a JSON
    body, and fail on one that is not an object; the screens never send JSON."""

    class Meta:
        def wrap_formdata(self, form: Any, formdata: Any) -> Any:
            if request.is_json:
                return None  # no data: the form is not submitted and says what is missing
            return super().wrap_formdata(form, formdata)


class PinForm(ScreenForm):
    pin = PasswordField(
        _l("PIN"),
        validators=[
            DataRequired(_l("Please enter the PIN.")),
            Regexp(r"^\d{4,12}$", message=_l("The PIN is 4 to 12 digits.")),
        ],
    )


class StaffLoginForm(PinForm):
    """The technician screen: a staff member's login name (empty: the shared technician PIN)."""

    name = StringField(
        _l("Name"),
        filters=[lambda v: v.strip().lower() if isinstance(v, str) else v],
        validators=[
            Optional(),
            Regexp(
                r"^[a-z][a-z0-9._-]{1,31}$",
                message=_l("The name is 2 to 32 letters, digits, '.', '_' or '-'."),
            ),
        ],
    )


class ContactForm(ScreenForm):
    """Where the e-copy is delivered (optional): an email address or an e-wallet id."""

    contact = StringField(
        _l("Email address or e-wallet ID (optional)"),
        filters=[nfc],
        validators=[
            Optional(),
            plain_text,
            Length(max=120, message=_l("At most %(max)d characters.")),
            Regexp(
                r"^([^@\s]+@[^@\s]+\.[A-Za-z]{2,}|(VNeID|MoMo|ZaloPay|VNPAY):[A-Za-z0-9._-]{3,40})$",
                message=_l(
                    "Please enter an email address (name@example.vn) or an e-wallet ID "
                    "such as MoMo:0912345678."
                ),
            ),
        ],
    )


class DossierForm(ScreenForm):
    code = StringField(
        _l("Dossier code"),
        filters=[nfc],
        validators=[
            DataRequired(_l("Please enter the dossier code.")),
            plain_text,
            Length(max=40, message=_l("At most %(max)d characters.")),
        ],
    )


class SearchForm(ScreenForm):
    q = StringField(
        _l("What do you need?"),
        filters=[nfc],
        validators=[
            DataRequired(_l("Please type a few words, for example “khai sinh”.")),
            plain_text,
            Length(min=2, max=80, message=_l("Please type 2 to 80 characters.")),
        ],
    )


VN_PHONE = r"^(0|\+84)(3|5|7|8|9)\d{8}$"


class AddressForm(ScreenForm):
    recipient = StringField(
        _l("Recipient's full name"),
        filters=[nfc],
        validators=[
            DataRequired(_l("Please enter the recipient's name.")),
            plain_text,
            Length(max=80, message=_l("At most %(max)d characters.")),
            Regexp(r"^[^\d]+$", message=_l("A name has no digits.")),
        ],
    )
    phone = StringField(
        _l("Mobile phone number"),
        filters=[lambda v: re.sub(r"[ .-]", "", v) if isinstance(v, str) else v],
        validators=[
            DataRequired(_l("Please enter a phone number.")),
            plain_text,
            Length(max=15, message=_l("At most %(max)d characters.")),
            Regexp(
                VN_PHONE, message=_l("A Vietnamese mobile number has 10 digits, e.g. 0912345678.")
            ),
        ],
    )
    province = StringField(
        _l("Province or city"),
        filters=[nfc],
        validators=[
            DataRequired(_l("Please enter the province or city.")),
            plain_text,
            Length(max=60, message=_l("At most %(max)d characters.")),
        ],
    )
    ward = StringField(
        _l("Ward or commune"),
        filters=[nfc],
        validators=[
            DataRequired(_l("Please enter the ward or commune.")),
            plain_text,
            Length(max=80, message=_l("At most %(max)d characters.")),
        ],
    )
    street = StringField(
        _l("House number and street"),
        filters=[nfc],
        validators=[
            DataRequired(_l("Please enter the house number and street.")),
            plain_text,
            Length(min=3, max=120, message=_l("Please enter 3 to 120 characters.")),
        ],
    )


class SubjectForm(ScreenForm):
    """Which result is to be posted: a dossier's (its code) or a certified copy (its code)."""

    subject_type = RadioField(
        _l("What should be sent?"),
        choices=[("dossier", _l("The result of a dossier")), ("copy", _l("A certified copy"))],
        validators=[DataRequired(_l("Please choose what should be sent."))],
    )
    code = StringField(
        _l("Dossier or copy code"),
        filters=[nfc],
        validators=[
            DataRequired(_l("Please enter the code.")),
            plain_text,
            Length(max=40, message=_l("At most %(max)d characters.")),
            Regexp(
                r"^[0-9A-Za-z][0-9A-Za-z.\-]{4,39}$",
                message=_l(
                    "A code has letters, digits, dots and dashes only, e.g. HN-K01-261123-42-7."
                ),
            ),
        ],
    )
