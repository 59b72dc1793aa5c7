"""The console's tables (SQLAlchemy Core): the models the migrations in fleet/migrations/ follow.

Times are POSIX seconds (float) everywhere; JSON columns hold what the kiosks sent.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

kiosks = sa.Table(
    "kiosks",
    metadata,
    sa.Column("kiosk_id", sa.String(64), primary_key=True),
    sa.Column("site", sa.String(128), nullable=False, default=""),
    sa.Column("site_fixed", sa.Boolean, nullable=False, default=False),  # set by an operator
    sa.Column("state", sa.String(16), nullable=False, default="unknown"),
    sa.Column("state_since", sa.Float, nullable=False),
    sa.Column("offline_reason", sa.String(32)),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("version", sa.String(64), nullable=False, default=""),
    sa.Column("protocol", sa.String(8), nullable=False, default=""),
    sa.Column("capabilities", sa.JSON, nullable=False, default=list),
    sa.Column("status", sa.JSON, nullable=False, default=dict),
    sa.Column("telemetry", sa.JSON),  # the last sample, as sent
    sa.Column("telemetry_at", sa.Float),
    sa.Column("cpu_temp_c", sa.Float),
    sa.Column("disk_used_pct", sa.Float),
    sa.Column("outbox_depth", sa.Integer),
    sa.Column("paper", sa.String(16)),  # ok | near-end | out | unknown
    sa.Column("printer_online", sa.Boolean),
    sa.Column("camera_ok", sa.Boolean),
    sa.Column("door", sa.String(16)),  # open | closed
    sa.Column("locked", sa.Boolean),
    sa.Column("last_error", sa.String(200)),
    sa.Column("last_error_at", sa.Float),
    sa.Column("cert_not_after", sa.Float),
    sa.Column("max_seq", sa.BigInteger, nullable=False, default=0),
    # Sequence numbers skipped (first arrivals come in seq order: docs/fleet.md), e.g.
    # telemetry shed on a full disk or a row refused by the broker.
    sa.Column("seq_gaps", sa.BigInteger, nullable=False, default=0),
    sa.Column("messages", sa.BigInteger, nullable=False, default=0),
)

# The dashboard filters and sorts in SQL (issue 20): by site, by state, by version.
sa.Index("kiosks_site", kiosks.c.site, kiosks.c.kiosk_id)
sa.Index("kiosks_state", kiosks.c.state, kiosks.c.state_since)
sa.Index("kiosks_version", kiosks.c.version)

telemetry = sa.Table(
    "telemetry",
    metadata,
    sa.Column("row", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("cpu_temp_c", sa.Float),
    sa.Column("disk_used_pct", sa.Float),
    sa.Column("outbox_depth", sa.Integer),
    sa.Column("load1", sa.Float),
    sa.Column("memory_used_pct", sa.Float),
    sa.Index("telemetry_kiosk_at", "kiosk_id", "at"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.String(160), primary_key=True),  # the kiosk's message id
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("at", sa.Float, nullable=False),  # kiosk wall clock
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("detail", sa.JSON, nullable=False, default=dict),
    sa.Index("events_kiosk_at", "kiosk_id", "at"),
)

records = sa.Table(
    "records",
    metadata,
    sa.Column("id", sa.String(160), primary_key=True),  # the kiosk's message id
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("deliveries", sa.Integer, nullable=False, default=1),
    # The record's data (a copy's citizen and PDF, a delivery address ...): personal data,
    # sealed with the console's data key (AES-GCM, the record id as associated data).
    sa.Column("sealed", sa.Text, nullable=False),
    sa.Index("records_kiosk_seq", "kiosk_id", "seq"),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", sa.String(160), primary_key=True),
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("args", sa.JSON, nullable=False, default=dict),
    sa.Column("operator", sa.String(64), nullable=False),
    sa.Column("sent_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="sent"),  # sent|ok|refused|error
    sa.Column("reason", sa.String(32)),
    sa.Column("message", sa.Text),
    sa.Column("result", sa.JSON),
    sa.Column("result_at", sa.Float),
    sa.Index("commands_sent", "sent_at"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("row", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("raised_at", sa.Float, nullable=False),
    sa.Column("cleared_at", sa.Float),
    sa.Index("alerts_open", "kiosk_id", "rule", "cleared_at"),
)

operators = sa.Table(
    "operators",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("private_key", sa.Text, nullable=False),  # PEM, encrypted with the password
    sa.Column("public_key", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
)

# Login throttling (fleet.operators.KeyRing): attempts counted per (operator, address) and
# per address, in a window that starts with the first attempt. Keys are sha256 hex digests,
# so the table holds no operator ids or addresses.
login_throttle = sa.Table(
    "login_throttle",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("since", sa.Float, nullable=False),
    sa.Index("login_throttle_since", "since"),
)

dossiers = sa.Table(
    "dossiers",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

claims = sa.Table(
    "claims",
    metadata,
    sa.Column("claim_id", sa.String(16), primary_key=True),  # c + 12 base32 (docs/provisioning.md)
    sa.Column("secret", sa.Text, nullable=False),  # sealed (AES-GCM): the HMAC key of the proofs
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("site", sa.String(128), nullable=False, default=""),
    sa.Column("serial", sa.String(64), nullable=False, default=""),  # device allowlist, "" = any
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("used_at", sa.Float),
    sa.Column("used_by", sa.String(64)),  # sha256 of the CSR's public key (DER) it was used for
    sa.Column("certificate", sa.Text),  # PEM, sent again to a repeat with the same key
    sa.Column("cert_serial", sa.String(64)),
    sa.Column("account_removed", sa.Boolean, nullable=False, default=False),
)

certificates = sa.Table(
    "certificates",
    metadata,
    sa.Column("serial", sa.String(64), primary_key=True),  # hex
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("not_after", sa.Float, nullable=False),
    sa.Column("issued_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
)

queue_stats = sa.Table(
    "queue_stats",
    metadata,
    sa.Column("site", sa.String(128), primary_key=True),
    sa.Column("area", sa.String(1), primary_key=True),
    sa.Column("day", sa.String(10), nullable=False),  # Asia/Ho_Chi_Minh date
    sa.Column("serving", sa.Integer, nullable=False),
    sa.Column("avg_service_s", sa.Float),
    sa.Column("counters_open", sa.Integer),
    # The priority series' (B-UT...) last number called; NULL: "serving" covers it.
    sa.Column("priority_serving", sa.Integer),
    sa.Column("updated_by", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Queue tickets as the kiosks report them (records/ticket, docs/fleet.md), one row each, so
# that central counts today's issued, called and waiting per site and area (issue 20). The
# record itself stays in `records` (sealed); this holds only what a queue figure needs.
queue_tickets = sa.Table(
    "queue_tickets",
    metadata,
    sa.Column("kiosk_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),  # the kiosk's local day
    sa.Column("area", sa.String(1), primary_key=True),
    sa.Column("series", sa.String(2), primary_key=True),  # "" or "UT" (priority)
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("issued_at", sa.Float, nullable=False),
    sa.Column("called_at", sa.Float),  # when a counter called it (the console's "call next")
    sa.Column("called_by", sa.String(64)),
    sa.Index("queue_tickets_day_area", "day", "area", "called_at"),
)

revocations = sa.Table(
    "revocations",
    metadata,
    # An e-copy code, or (kind "certificate") a signing certificate's serial in hex.
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False, default="code"),
    sa.Column("reason", sa.String(200), nullable=False, default=""),
    sa.Column("operator", sa.String(64), nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=False),
    # certificate: copies it signed from this time on are revoked (null: all of them)
    sa.Column("effective_from", sa.Float),
)

# --- Certification (issue 16; docs/ecopy.md). One row per original a citizen brought.
cert_requests = sa.Table(
    "cert_requests",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the kiosk's request code
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("agency", sa.String(64), nullable=False),  # whose officers certify it
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("deadline", sa.Float, nullable=False),  # Decree 23/2015 Art. 7
    sa.Column("status", sa.String(16), nullable=False),  # queued approved refused see_staff
    sa.Column("doc_type", sa.String(64), nullable=False, default=""),
    sa.Column("pages", sa.Integer, nullable=False),
    sa.Column("flags", sa.JSON, nullable=False, default=list),  # the kiosk's checks that fired
    sa.Column("package", sa.LargeBinary, nullable=False),  # the signed package, sealed
    sa.Column("package_sha256", sa.String(64), nullable=False),
    sa.Column("decided_at", sa.Float),
    sa.Column("officer", sa.String(64)),
    sa.Column("reason_code", sa.String(32)),
    sa.Column("reason_text", sa.String(500)),
    sa.Column("copy_code", sa.String(64), unique=True),  # set at approval
    sa.Index("cert_requests_queue", "agency", "status", "received_at"),
)

# The certification book's counter: the last number given per agency and year. Approval takes
# number last+1 in the same transaction as the decision and the book row: no gap, no repeat.
cert_counters = sa.Table(
    "cert_counters",
    metadata,
    sa.Column("agency", sa.String(64), primary_key=True),
    sa.Column("year", sa.Integer, primary_key=True),
    sa.Column("last_number", sa.Integer, nullable=False),
)

cert_book = sa.Table(
    "cert_book",
    metadata,
    sa.Column("agency", sa.String(64), primary_key=True),
    sa.Column("year", sa.Integer, primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("book", sa.String(64), nullable=False),  # as printed, e.g. 01/2026-SCTĐT/BS
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("copy_code", sa.String(64), nullable=False, unique=True),
    sa.Column("certified_at", sa.Float, nullable=False),
    sa.Column("officer", sa.String(64), nullable=False),
    sa.Column("officer_name", sa.String(128), nullable=False),
    sa.Column("officer_title", sa.String(128), nullable=False),
    sa.Column("doc_type", sa.String(64), nullable=False, default=""),
    sa.Column("pages", sa.Integer, nullable=False),
    sa.Column("requester", sa.LargeBinary),  # the citizen's name, sealed (the register lists it)
    sa.Column("fee_vnd", sa.Integer, nullable=False, default=0),
    sa.Column("pdf", sa.LargeBinary, nullable=False),  # the signed copy, sealed
    sa.Column("pdf_sha256", sa.String(64), nullable=False),
    sa.Column("thumbnail", sa.LargeBinary),  # page 1 at low resolution (JPEG), for /v/<code>
    sa.Column("revoked_at", sa.Float),
    sa.Column("revoked_reason", sa.String(200)),
)

# Named certifying officers and centre admins of the workstation (password + TOTP).
officers = sa.Table(
    "officers",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("full_name", sa.String(128), nullable=False),
    sa.Column("title", sa.String(128), nullable=False),  # as printed under the statement
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # officer | admin
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("totp_secret", sa.LargeBinary, nullable=False),  # sealed
    sa.Column("token_label", sa.String(64), nullable=False, default=""),  # PKCS#11 token
    sa.Column("key_label", sa.String(64), nullable=False, default=""),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("failed_logins", sa.Integer, nullable=False, default=0),
    sa.Column("locked_until", sa.Float),
    sa.Column("last_totp_step", sa.BigInteger),  # a code is good once (RFC 6238 5.2)
    sa.Column("created_at", sa.Float, nullable=False),
)

# Every login and decision on the workstation: who, when, what, from where.
cert_audit = sa.Table(
    "cert_audit",
    metadata,
    sa.Column("row", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("officer", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("request_id", sa.String(64)),
    sa.Column("remote_addr", sa.String(64), nullable=False, default=""),
    sa.Column("detail", sa.JSON, nullable=False, default=dict),
    sa.Index("cert_audit_at", "at"),
)

# Sending an approved copy where the citizen chose (docs/ecopy.md, "Delivery"): written with
# the approval, in its transaction; the sender (fleet/certify/delivery.py) works through it.
cert_deliveries = sa.Table(
    "cert_deliveries",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(16), nullable=False),  # email ewallet post
    sa.Column("address", sa.LargeBinary, nullable=False),  # sealed with the data key
    sa.Column("status", sa.String(16), nullable=False),  # pending sent failed unsupported
    sa.Column("tries", sa.Integer, nullable=False, default=0),
    sa.Column("next_try_at", sa.Float, nullable=False),
    sa.Column("last_error", sa.String(200)),  # an error class only: no personal data
    sa.Column("sent_at", sa.Float),
    sa.Index("cert_deliveries_due", "status", "next_try_at"),
)

# Payments (docs/payments.md): the kiosks' payment requests, the bank's notifications and the fee
# receipts. A request holds no personal data; a notification's own data (the payer's account
# and name, the transfer text) and a receipt's payer name are sealed with the data key.
payment_requests = sa.Table(
    "payment_requests",
    metadata,
    sa.Column("reference", sa.String(8), primary_key=True),  # 8 upper-case hex digits
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("record_id", sa.String(160), nullable=False),
    sa.Column("amount_vnd", sa.BigInteger, nullable=False),
    sa.Column("bank_bin", sa.String(6), nullable=False),
    sa.Column("account", sa.String(19), nullable=False),
    sa.Column("fee_name", sa.String(200), nullable=False),
    sa.Column("procedure", sa.String(8), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | confirmed
    sa.Column("bank_reference", sa.String(64)),
    sa.Column("confirmation", sa.JSON),  # the payment-confirmation/1 sent, sent again on replay
    sa.Column("confirmed_at", sa.Float),
)

bank_notifications = sa.Table(
    "bank_notifications",
    metadata,
    sa.Column("bank_reference", sa.String(64), primary_key=True),  # data.reference: idempotency
    sa.Column("provider", sa.String(16), nullable=False),  # payos
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("paid_at", sa.Float),  # the bank's transactionDateTime
    sa.Column("amount_vnd", sa.BigInteger, nullable=False),
    sa.Column("account", sa.String(32), nullable=False),
    sa.Column("reference", sa.String(8)),  # the request it was matched (or compared) against
    sa.Column("kiosk_id", sa.String(64)),
    # confirmed | unmatched (no request with its reference yet) | wrong_amount | wrong_account
    # | late | already_paid | not_paid (the bank's code is not 00)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=False),  # the notification's data, sealed
    sa.Index("bank_notifications_status", "status", "received_at"),
)

fee_receipts = sa.Table(
    "fee_receipts",
    metadata,
    sa.Column("number", sa.String(48), primary_key=True),  # <kiosk>-<yyyymmdd>-<sequence>
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("record_id", sa.String(160), nullable=False),
    sa.Column("day", sa.String(10), nullable=False),  # collected_at's date in Vietnam
    sa.Column("collected_at", sa.Float, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("reference", sa.String(8), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),  # bank_transfer | cash | waived
    sa.Column("amount_vnd", sa.BigInteger, nullable=False),
    sa.Column("fee_vnd", sa.BigInteger, nullable=False),
    sa.Column("fee_name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # phí | lệ phí
    sa.Column("rule_id", sa.String(64), nullable=False),
    sa.Column("legal_basis", sa.String(300), nullable=False),
    sa.Column("support_id", sa.String(64)),
    sa.Column("procedure", sa.String(8), nullable=False),
    sa.Column("pages", sa.Integer),
    sa.Column("bank_reference", sa.String(64)),
    sa.Column("staff", sa.String(64)),
    sa.Column("copy_code", sa.String(80)),
    sa.Column("payer", sa.LargeBinary, nullable=False),  # payer_name, sealed with the data key
    sa.Index("fee_receipts_day_kiosk", "day", "kiosk_id"),
)
