"""`kiosk-ca`: the center's small certificate authority. It keeps the CA key and signs kiosk
CSRs (offline enrolment by file), revokes certificates and writes the CRL Mosquitto reads."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.pki import self_signed_ca
from protocol.cli import run_command
from protocol.errors import EXIT_OK, BadInput
from protocol.files import write_atomic

KIOSK_ID = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")
# Central's own MQTT identities (fleet-central, fleet-worker-<n>, fleet-catalog ...): lowercase,
# so never a kiosk id; each is a `user` block of config/mosquitto/kiosk-fleet.acl.
CENTRAL_NAME = re.compile(r"^fleet-[a-z0-9][a-z0-9-]{0,40}$")
DEFAULT_DAYS = 365


class CaError(BadInput):
    """A refusal of the CA tool, said in one line (exit code 2)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    """An unencrypted PKCS#8 PEM of a key made here, for its holder's 0600 file."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _write(path: Path, data: bytes, mode: int) -> None:
    write_atomic(path, data, mode, dir_mode=0o755)  # output folders stay readable (CRL files)


class CertificateAuthority:
    """A CA directory: ca.key (0600), ca.crt, issued.json (serial -> kiosk, validity, revocation)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.key_path = directory / "ca.key"
        self.cert_path = directory / "ca.crt"
        self.db_path = directory / "issued.json"

    # --- setup --------------------------------------------------------------------------

    def init(self, name: str = "kiosk-edge fleet CA", *, days: int = 3650) -> x509.Certificate:
        if self.key_path.exists():
            raise CaError(f"{self.dir} already holds a CA")
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = self_signed_ca(
            key,
            subject,
            not_before=now - dt.timedelta(hours=1),
            not_after=now + dt.timedelta(days=days),
        )
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write(
            self.key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            0o600,
        )
        _write(self.cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        self._save({})
        return cert

    @classmethod
    def adopt(cls, directory: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate):
        """An existing CA key and certificate (e.g. from another tool) under our management."""
        ca = cls(directory)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write(
            ca.key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            0o600,
        )
        _write(ca.cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        if not ca.db_path.exists():
            ca._save({})
        return ca

    # --- state ----------------------------------------------------------------------------

    def _load(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        if not self.key_path.exists():
            raise CaError(f"no CA in {self.dir} (run 'kiosk-ca init --ca-dir {self.dir}')")
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key, cert

    def issued(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.db_path.read_text()) if self.db_path.exists() else {}

    def _save(self, issued: dict[str, dict[str, Any]]) -> None:
        _write(self.db_path, json.dumps(issued, indent=2, sort_keys=True).encode(), 0o600)

    @property
    def certificate_pem(self) -> str:
        return self.cert_path.read_text()

    # --- signing --------------------------------------------------------------------------

    def sign_csr(
        self, csr_pem: str | bytes, *, days: int = DEFAULT_DAYS, kiosk_id: str | None = None
    ) -> str:
        """A kiosk client certificate for the CSR's key: CN = kiosk id, clientAuth, CA:FALSE."""
        try:
            csr = x509.load_pem_x509_csr(
                csr_pem if isinstance(csr_pem, bytes) else csr_pem.encode()
            )
        except ValueError as err:
            raise CaError(f"not a PEM certificate request: {err}") from err
        if not csr.is_signature_valid:
            raise CaError("the request's signature does not verify")
        public = csr.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
            raise CaError("the request's key is not ECDSA P-256")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(names[0].value) if names else ""
        if not KIOSK_ID.match(cn):
            raise CaError(f"the request's CN {cn!r} is not a kiosk id (A-Z, 0-9, '-')")
        if kiosk_id is not None and cn != kiosk_id:
            raise CaError(f"the request names {cn}, not {kiosk_id}")
        if not 1 <= days <= 825:
            raise CaError("days must be between 1 and 825")
        return self._issue(cn, public, days=days, server_names=None)

    def issue_server(
        self, name: str, *, sans: list[str], days: int = DEFAULT_DAYS
    ) -> tuple[str, str]:
        """A broker certificate and its key (PEM), for the center's own Mosquitto."""
        key = ec.generate_private_key(ec.SECP256R1())
        return self._issue(name, key.public_key(), days=days, server_names=sans), _pem(key)

    def issue_central(self, name: str, *, days: int = DEFAULT_DAYS) -> tuple[str, str]:
        """A client certificate and its key (PEM) for one of central's processes, e.g. a
        console worker (CN fleet-worker-<n>); recorded in issued.json, so revocable."""
        if not CENTRAL_NAME.match(name):
            raise CaError(f"{name!r} is not a central identity (fleet-<a-z, 0-9, '-'>)")
        if not 1 <= days <= 825:
            raise CaError("days must be between 1 and 825")
        key = ec.generate_private_key(ec.SECP256R1())
        return self._issue(name, key.public_key(), days=days, server_names=None), _pem(key)

    def _issue(self, cn: str, public: Any, *, days: int, server_names: list[str] | None) -> str:
        ca_key, ca_cert = self._load()
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if server_names is None:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        else:
            sans: list[x509.GeneralName] = []
            for value in server_names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(value)))
                except ValueError:
                    sans.append(x509.DNSName(value))
            builder = builder.add_extension(
                x509.SubjectAlternativeName(sans), critical=False
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        issued = self.issued()
        issued[format(cert.serial_number, "x")] = {
            "cn": cn,
            "not_after": cert.not_valid_after_utc.isoformat(),
            "issued_at": now.isoformat(),
            "revoked_at": None,
        }
        self._save(issued)
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    # --- revocation ----------------------------------------------------------------------

    def revoke(self, serial_or_cert: str) -> str:
        """Mark a certificate revoked, by hex serial or by a PEM certificate file's text."""
        text = serial_or_cert.strip()
        if text.startswith("-----BEGIN CERTIFICATE-----"):
            serial = format(x509.load_pem_x509_certificate(text.encode()).serial_number, "x")
        else:
            serial = text.lower().removeprefix("0x")
        issued = self.issued()
        if serial not in issued:
            raise CaError(f"no certificate with serial {serial} was issued by this CA")
        if not issued[serial]["revoked_at"]:
            issued[serial]["revoked_at"] = _now().isoformat()
            self._save(issued)
        return serial

    def crl_pem(self, *, days: int = 7) -> str:
        """The CRL of every revoked certificate, valid for `days` (publish it before then)."""
        ca_key, ca_cert = self._load()
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=days))
        )
        for serial, entry in sorted(self.issued().items()):
            if entry["revoked_at"]:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(int(serial, 16))
                    .revocation_date(dt.datetime.fromisoformat(entry["revoked_at"]))
                    .build()
                )
        crl = builder.sign(ca_key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM).decode()


# --- the command ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kiosk-ca", description="The fleet CA at the center: sign kiosk CSRs, revoke, CRL."
    )
    parser.add_argument(
        "--ca-dir",
        type=Path,
        default=Path(os.environ.get("KIOSK_CA_DIR", "/srv/kiosk-ca")),
        help="CA directory (ca.key, ca.crt, issued.json); default $KIOSK_CA_DIR or /srv/kiosk-ca",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create the CA key (0600) and certificate")
    init.add_argument("--name", default="kiosk-edge fleet CA")
    init.add_argument("--days", type=int, default=3650)
    sign = sub.add_parser("sign", help="sign a kiosk's CSR (offline enrolment)")
    sign.add_argument("csr", type=Path, help="the CSR file the kiosk wrote (PEM)")
    sign.add_argument("--out", type=Path, help="certificate file (default: CSR name with .crt)")
    sign.add_argument("--kiosk-id", help="refuse unless the CSR names this kiosk")
    sign.add_argument("--days", type=int, default=DEFAULT_DAYS)
    server = sub.add_parser("server", help="issue the broker's certificate and key")
    server.add_argument("name")
    server.add_argument("--san", action="append", default=[], help="DNS name or IP (repeatable)")
    server.add_argument("--out-dir", type=Path, required=True)
    central = sub.add_parser(
        "central", help="issue a certificate and key for one of central's processes (a worker)"
    )
    central.add_argument("name", help="its CN, the ACL's user: fleet-worker-4")
    central.add_argument("--out-dir", type=Path, required=True)
    central.add_argument("--days", type=int, default=DEFAULT_DAYS)
    revoke = sub.add_parser("revoke", help="revoke a certificate (hex serial or PEM file)")
    revoke.add_argument("what")
    crl = sub.add_parser("crl", help="write the CRL (PEM) for Mosquitto's crlfile")
    crl.add_argument("--out", type=Path, required=True)
    crl.add_argument("--days", type=int, default=7)
    sub.add_parser("list", help="the certificates issued, as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("kiosk-ca", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    ca = CertificateAuthority(args.ca_dir)
    if args.command == "init":
        cert = ca.init(args.name, days=args.days)
        print(f"CA created in {args.ca_dir} (serial {cert.serial_number:x}); ca.crt goes to kiosks")
    elif args.command == "sign":
        if not args.csr.exists():
            raise CaError(f"{args.csr} does not exist")
        pem = ca.sign_csr(args.csr.read_bytes(), days=args.days, kiosk_id=args.kiosk_id)
        out = args.out or args.csr.with_suffix(".crt")
        _write(out, pem.encode(), 0o644)
        cert = x509.load_pem_x509_certificate(pem.encode())
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        print(
            f"signed {cn}: serial {cert.serial_number:x}, until "
            f"{cert.not_valid_after_utc:%Y-%m-%d}, written to {out}"
        )
    elif args.command == "server":
        cert_pem, key_pem = ca.issue_server(args.name, sans=args.san or [args.name])
        _write(args.out_dir / f"{args.name}.crt", cert_pem.encode(), 0o644)
        _write(args.out_dir / f"{args.name}.key", key_pem.encode(), 0o600)
        print(f"server certificate for {args.name} written to {args.out_dir}")
    elif args.command == "central":
        cert_pem, key_pem = ca.issue_central(args.name, days=args.days)
        _write(args.out_dir / f"{args.name}.crt", cert_pem.encode(), 0o644)
        _write(args.out_dir / f"{args.name}.key", key_pem.encode(), 0o600)
        print(f"client certificate for {args.name} written to {args.out_dir}")
    elif args.command == "revoke":
        what = args.what
        if Path(what).is_file():
            what = Path(what).read_text()
        print(f"revoked {ca.revoke(what)}; now publish the CRL (kiosk-ca crl --out ...)")
    elif args.command == "crl":
        _write(args.out, ca.crl_pem(days=args.days).encode(), 0o644)
        print(f"CRL written to {args.out}")
    elif args.command == "list":
        print(json.dumps(ca.issued(), indent=2, sort_keys=True))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
