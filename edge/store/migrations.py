"""Schema migrations, applied in order; PRAGMA user_version records how far a database got."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: outbox, print jobs, small key-value facts.
    """
    CREATE TABLE outbox (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,  -- per-kiosk order, never reused
        id         TEXT NOT NULL UNIQUE,               -- stable id central deduplicates on
        kind       TEXT NOT NULL,                      -- record | event | telemetry
        topic      TEXT NOT NULL,                      -- suffix under kiosk/v1/<kiosk_id>/
        payload    BLOB NOT NULL,                      -- AES-GCM sealed JSON
        created_at REAL NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_kind ON outbox(kind, seq);
    CREATE TABLE print_jobs (
        id         TEXT PRIMARY KEY,
        kind       TEXT NOT NULL,                      -- test | receipt | ticket | checklist ...
        title      TEXT NOT NULL,                      -- shown on the reprint screen; no personal data
        payload    BLOB NOT NULL,                      -- AES-GCM sealed ESC/POS bytes
        status     TEXT NOT NULL CHECK (status IN ('pending', 'printed', 'failed')),
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at REAL NOT NULL,
        printed_at REAL
    );
    CREATE INDEX print_jobs_status ON print_jobs(status, created_at);
    CREATE TABLE kv (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: consent records (Decree 13/2023/ND-CP): explicit, timed, printable.
    """
    CREATE TABLE consents (
        id         TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        purpose    TEXT NOT NULL,                      -- purpose code, e.g. face_verification
        text_hash  TEXT NOT NULL,                      -- sha256 of the exact text shown
        given_at   REAL NOT NULL,
        kiosk_id   TEXT NOT NULL,
        subject    BLOB NOT NULL                       -- AES-GCM sealed {id_number, name}
    );
    CREATE INDEX consents_session ON consents(session_id);
    """,
    # 3: citizen services: queue tickets, dossier status cache, post requests.
    """
    CREATE TABLE tickets (
        day                TEXT NOT NULL,              -- local day (kiosk timezone), YYYY-MM-DD
        area               TEXT NOT NULL,              -- service area letter
        seq                INTEGER NOT NULL,           -- 1, 2, 3 ... per area per day, no gaps
        number             TEXT NOT NULL,              -- what is printed, e.g. B-027
        issued_at          REAL NOT NULL,
        waiting_ahead      INTEGER,
        estimated_wait_min INTEGER,
        queued             INTEGER NOT NULL DEFAULT 0, -- 1 once its record is in the outbox
        PRIMARY KEY (day, area, seq)
    );
    CREATE INDEX tickets_unqueued ON tickets(queued) WHERE queued = 0;
    CREATE TABLE dossier_cache (
        code_hash  TEXT PRIMARY KEY,                   -- sha256 of the normalised dossier code
        answer     BLOB NOT NULL,                      -- AES-GCM sealed answer from central
        fetched_at REAL NOT NULL
    );
    CREATE TABLE post_requests (
        id         TEXT PRIMARY KEY,
        subject    TEXT NOT NULL,                      -- dossier | copy
        payload    BLOB NOT NULL,                      -- AES-GCM sealed address and recipient
        created_at REAL NOT NULL,
        queued     INTEGER NOT NULL DEFAULT 0          -- 1 once its record is in the outbox
    );
    """,
    # 4: electronic certified copies: issued copies (PDF and citizen sealed), one row each.
    """
    CREATE TABLE copies (
        code         TEXT PRIMARY KEY,                 -- <kiosk>-<yyMMdd>-<seq>-<check>
        seq          INTEGER NOT NULL UNIQUE,          -- the kiosk's copy number, never reused
        issued_at    REAL NOT NULL,
        pages        INTEGER NOT NULL,
        fee_vnd      INTEGER NOT NULL,
        payable_vnd  INTEGER NOT NULL,
        content_hash TEXT NOT NULL,                    -- sha256 of the page images (hex)
        qr           TEXT NOT NULL,                    -- signed QR payload (no personal data)
        pdf          BLOB NOT NULL,                    -- AES-GCM sealed signed PDF
        citizen      BLOB NOT NULL,                    -- AES-GCM sealed {id_number, name, ...}
        outbox_id    TEXT NOT NULL,                    -- its records/copy message
        acked_at     REAL,                             -- central stored it (its record-ack)
        receipt_job  TEXT                              -- print_jobs.id of its receipt
    );
    CREATE INDEX copies_acked ON copies(acked_at);
    """,
    # 5: provisioning state and updates (reserved).
    "-- reserved",
    # 6: named staff logins, the audit of what they did, print jobs whose bytes were erased.
    """
    CREATE TABLE staff (
        name       TEXT PRIMARY KEY,                   -- login handle, e.g. lan.nguyen
        pin_hash   TEXT NOT NULL,                      -- werkzeug scrypt hash of the PIN
        created_at REAL NOT NULL
    );
    CREATE TABLE audit (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        at      REAL NOT NULL,
        actor   TEXT NOT NULL,                         -- staff name, technician (shared PIN), cli
        action  TEXT NOT NULL,                         -- technician.login | print.reprint
        subject TEXT NOT NULL DEFAULT '',              -- e.g. the print job's id
        kind    TEXT NOT NULL DEFAULT ''               -- e.g. the print job's kind
    );
    ALTER TABLE print_jobs ADD COLUMN purged_at REAL;  -- its sealed bytes were erased then
    """,
    # 7: certification requests (issue 16): one per original, answered by central's officer.
    """
    CREATE TABLE cert_requests (
        code        TEXT PRIMARY KEY,                  -- <kiosk>-<yyMMdd>-<seq>-<check>
        visit       TEXT NOT NULL,                     -- the citizen's visit (several originals)
        original    INTEGER NOT NULL,                  -- which original of the visit, from 1
        created_at  REAL NOT NULL,
        due_at      REAL NOT NULL,                     -- Decree 23/2015 Art. 7
        pages       INTEGER NOT NULL,
        fee_vnd     INTEGER NOT NULL,
        payable_vnd INTEGER NOT NULL,
        channel     TEXT NOT NULL,                     -- email | ewallet | post | kiosk
        status      TEXT NOT NULL DEFAULT 'sent',      -- sent | queued | approved | refused | see_staff
        position    INTEGER,                           -- in the officers' queue (queued)
        wait_min    REAL,
        reason      TEXT,                              -- refused: protocol.certify.REFUSAL_REASONS
        number      TEXT,                              -- approved: the number in the book
        book        TEXT,
        qr          TEXT,                              -- approved: the copy's QR, from central
        detail      BLOB NOT NULL,                     -- AES-GCM sealed {citizen, delivery}
        pdf         BLOB,                              -- AES-GCM sealed certified copy
        updated_at  REAL NOT NULL,
        printed     INTEGER NOT NULL DEFAULT 0,        -- 1 once its receipt or slip printed
        pickup_hash TEXT                               -- sha256 of the one-time pickup code
    );
    CREATE INDEX cert_requests_visit ON cert_requests(visit);
    """,
    # 8: priority queue tickets (their own series per area and day) and satisfaction ratings,
    # kept as counters per hour only (no row per visit, nothing tied to a ticket or session).
    """
    CREATE TABLE tickets_v8 (
        day                TEXT NOT NULL,
        area               TEXT NOT NULL,
        series             TEXT NOT NULL DEFAULT '',   -- '' ordinary | 'UT' priority (served first)
        seq                INTEGER NOT NULL,           -- 1, 2, 3 ... per area, series and day
        number             TEXT NOT NULL,              -- B-027 | B-UT003
        priority           TEXT,                       -- self-declared group code, or NULL
        issued_at          REAL NOT NULL,
        waiting_ahead      INTEGER,
        estimated_wait_min INTEGER,
        queued             INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, area, series, seq)
    );
    INSERT INTO tickets_v8(day, area, seq, number, issued_at, waiting_ahead,
                           estimated_wait_min, queued)
        SELECT day, area, seq, number, issued_at, waiting_ahead, estimated_wait_min, queued
        FROM tickets;
    DROP TABLE tickets;
    ALTER TABLE tickets_v8 RENAME TO tickets;
    CREATE INDEX tickets_unqueued ON tickets(queued) WHERE queued = 0;
    CREATE TABLE rating_counts (
        hour   TEXT NOT NULL,                          -- local hour, YYYY-MM-DDTHH
        flow   TEXT NOT NULL,                          -- ticket | ecopy | dossier | post | verify | guide
        rating TEXT NOT NULL,                          -- very_satisfied | satisfied | not_satisfied
        n      INTEGER NOT NULL,
        PRIMARY KEY (hour, flow, rating)
    );
    """,
    # 9: staff roles (issue 18): who may only confirm identities and answer calls, accounts
    # switched off, and which came from central (set-staff replaces those, never local ones).
    """
    ALTER TABLE staff ADD COLUMN role TEXT NOT NULL DEFAULT 'technician';  -- staff | technician
    ALTER TABLE staff ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;      -- 1: cannot sign in
    ALTER TABLE staff ADD COLUMN origin TEXT NOT NULL DEFAULT 'local';     -- local | central
    """,
    # 10: consent under Law 91/2025/QH15 (issue 19): the version of the text and the language it
    # was shown in; text_hash is then sha256 of that exact text (docs/consent.md). Records from
    # before are issue 8's face consent, version 1, whose hash covered both languages.
    """
    ALTER TABLE consents ADD COLUMN version TEXT NOT NULL DEFAULT '1';
    ALTER TABLE consents ADD COLUMN lang TEXT NOT NULL DEFAULT 'vi+en';
    """,
    # 11: results by post (issue 19): the Vietnam Post shipment reference central sends
    # (post-shipment/1), and its last state; no personal data.
    """
    ALTER TABLE post_requests ADD COLUMN shipment_ref TEXT;         -- UPU S10, e.g. EE123456785VN
    ALTER TABLE post_requests ADD COLUMN shipment_status TEXT;      -- accepted | in_transit | ...
    ALTER TABLE post_requests ADD COLUMN shipment_at TEXT;          -- ISO 8601, as central said
    """,
    # 12: payments (issue 19, docs/payments.md): one row per payment reference the kiosk asked
    # for or a waiver it applied; how it was confirmed (central's bank confirmation, cash by a
    # named staff account) and the fee receipt queued for it. The payer's name is sealed and
    # dropped once the receipt is queued or the request expired; the day's receipt sequence.
    """
    CREATE TABLE payments (
        reference      TEXT PRIMARY KEY,               -- 8 upper-case hex digits, no personal data
        amount_vnd     INTEGER NOT NULL,               -- asked (0: waived)
        fee            TEXT NOT NULL,                  -- JSON: the fee and its rules, no personal data
        payer          BLOB,                           -- AES-GCM sealed payer name, until receipted
        created_at     REAL NOT NULL,
        expires_at     REAL NOT NULL,
        requested      INTEGER NOT NULL DEFAULT 0,     -- 1 once a payment-request record is queued
        method         TEXT,                           -- bank_transfer | cash | waived, once confirmed
        bank_reference TEXT,                           -- the bank's transaction reference
        staff          TEXT,                           -- cash: the staff login that confirmed it
        paid_at        TEXT,                           -- ISO 8601
        confirmed_at   TEXT,                           -- ISO 8601
        receipt        TEXT UNIQUE                     -- <kiosk>-<yyyymmdd>-<seq>, once queued
    );
    CREATE TABLE receipt_days (
        day  TEXT PRIMARY KEY,                         -- yyyymmdd, the kiosk's local day
        seq  INTEGER NOT NULL                          -- the last receipt number used that day
    );
    """,
]
