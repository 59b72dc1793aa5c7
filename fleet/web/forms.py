"""The console's forms (Flask-WTF: every POST carries the session's CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3; types-WTForms 3.2.1, the newest, lacks it
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from fleet.console import COMMANDS


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
    # Required: without a site (none to choose yet) the figures have nowhere to go.
    site = SelectField("Điểm / site", [DataRequired()], choices=[], validate_choice=False)
    area = StringField("Khu vực / area", [DataRequired(), Length(min=1, max=1)])
    serving = IntegerField("Đang phục vụ số / now serving", [NumberRange(min=0, max=9999)])
    avg_service_s = IntegerField(
        "Thời gian TB (giây) / avg service (s)", [Optional(), NumberRange(min=0, max=36000)]
    )
    counters_open = IntegerField(
        "Quầy mở / counters open", [Optional(), NumberRange(min=0, max=100)]
    )
    # Optional: counters that call the priority series (B-UT...) apart give its last number.
    priority_serving = IntegerField(
        "Số ưu tiên đang phục vụ / priority number serving",
        [Optional(), NumberRange(min=0, max=9999)],
    )


class CallForm(FlaskForm):
    """A counter calls the next ticket of a site's area (queue figures from the kiosks)."""

    site = StringField("Điểm / site", [DataRequired(), Length(max=128)])
    area = StringField("Khu vực / area", [DataRequired(), Length(min=1, max=1)])


class SiteForm(FlaskForm):
    site = StringField("Điểm / site", [DataRequired(), Length(max=128)])


class ShipmentForm(FlaskForm):
    request_code = StringField(
        "Mã yêu cầu gửi bưu điện / post request id", [DataRequired(), Length(max=40)]
    )
    reference = StringField("Mã bưu gửi (S10) / item reference", [DataRequired(), Length(max=20)])
    status = SelectField(
        "Trạng thái / status",
        choices=[
            SelectChoice("accepted", "Bưu điện đã nhận / accepted"),
            SelectChoice("in_transit", "Đang vận chuyển / in transit"),
            SelectChoice("delivered", "Đã phát / delivered"),
            SelectChoice("returned", "Chuyển hoàn / returned"),
        ],
    )
