"""The block of central's Mosquitto ACL for one regional broker's bridge (docs/fleet.md,
"Regional brokers").

A bridge connects to central with its own certificate (CN = its client id). It may carry exactly
what its kiosks may use, for its kiosks only: write what a kiosk writes, read what a kiosk reads,
in each of its kiosks' trees, and publish its own connection state. Mosquitto's ACL has no
wildcard inside a topic level, so the kiosks are listed one by one.

    python -m fleet.bridge_acl fleet-bridge-HN-TAYHO HN-TAYHO-01 HN-TAYHO-02 >> kiosk-fleet.acl

then SIGHUP central's broker (it re-reads the ACL; the bridge keeps its connection).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence

# A kiosk's topics relative to its tree: what it writes (kiosks -> central) ...
KIOSK_WRITES = ("state", "telemetry", "events", "records/#", "cmd/+/result", "req/+")
# ... and what it reads (central -> kiosks), as in kiosk-fleet.acl's pattern lines.
KIOSK_READS = ("cmd/+", "res/+", "ack", "cert")
# Central's topics shared by every kiosk, retained.
SHARED_READS = ("fleet/v1/status", "fleet/v1/revocations")
BRIDGE_STATE = "fleet/v1/bridges/{bridge}/state"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def bridge_acl_block(bridge: str, kiosk_ids: Iterable[str], prefix: str = "kiosk/v1") -> str:
    """The `user <bridge>` block: one line per topic per kiosk, shared topics, its own state."""
    names = [bridge, *kiosk_ids]
    for name in names:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a certificate CN usable in a topic: {name!r}")
    kiosks = sorted(set(names[1:]))
    lines = [
        f"# Regional broker bridge {bridge}: {len(kiosks)} kiosks (python -m fleet.bridge_acl).",
        f"user {bridge}",
        f"topic write {BRIDGE_STATE.format(bridge=bridge)}",
        *(f"topic read {topic}" for topic in SHARED_READS),
    ]
    for kiosk in kiosks:
        lines += [f"topic write {prefix}/{kiosk}/{topic}" for topic in KIOSK_WRITES]
        lines += [f"topic read {prefix}/{kiosk}/{topic}" for topic in KIOSK_READS]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleet.bridge_acl",
        description="Print central's ACL block for one regional broker's bridge.",
    )
    parser.add_argument("bridge", help="the bridge certificate's CN (its remote_clientid)")
    parser.add_argument("kiosks", nargs="+", help="the kiosk ids behind this regional broker")
    parser.add_argument("--prefix", default="kiosk/v1", help="the fleet topic prefix")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(bridge_acl_block(args.bridge, args.kiosks, args.prefix))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
