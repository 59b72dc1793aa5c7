"""Signed software bundles and atomic A/B installs with automatic rollback.

Layout under the install root (`[update] root`, /opt/kiosk-edge on a kiosk):

    releases/<version>-<sha8>/   one complete release per directory (payload + .release.json)
    current  -> releases/...     what systemd runs; replaced by one rename (atomic)
    previous -> releases/...     what a rollback returns to
    update.json                  the journal: phase, from, to (survives kill -9 / power cuts)

A bundle is verified (signature, then payload hash) before anything on disk is touched. A
switch that is not committed (healthy within the timeout) is rolled back, also after a crash:
`recover()` runs first in every `apply()` and at boot (kiosk-update.service).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge import config as cfg
from edge.errors import BadInput, KioskError
from protocol.files import fsync_dir

logger = logging.getLogger(__name__)

BUNDLE_SCHEMA = "update-bundle/1"
MANIFEST, SIGNATURE, PAYLOAD = "manifest.json", "manifest.sig", "payload.tar.gz"
MAX_MANIFEST = 64 * 1024
MAX_PAYLOAD = 2 * 1024**3
VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")
KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class UpdateRefused(KioskError):
    """The bundle is not one we may install (signature, hash, shape); nothing was changed."""

    code = "update_refused"
    exit_code = 2


class UpdateBusy(KioskError):
    code = "update_busy"


# --- making and verifying bundles --------------------------------------------------------


def make_bundle(
    source: Path, out: Path, *, version: str, key_file: Path, key_id: str, notes: str = ""
) -> dict[str, Any]:
    """Center side: pack `source` (a release tree) and sign its manifest."""
    if not VERSION.match(version):
        raise BadInput(f"version {version!r} must match {VERSION.pattern}")
    if not KEY_ID.match(key_id):
        raise BadInput(f"key id {key_id!r} must match {KEY_ID.pattern}")
    if not source.is_dir():
        raise BadInput(f"{source} is not a directory")
    package = source / "edge" / "__init__.py"
    if package.exists():  # the health check compares the daemon's version with the bundle's
        found = re.search(r'^__version__ = "([^"]+)"', package.read_text(), re.MULTILINE)
        if found and found.group(1) != version:
            raise BadInput(f"--version {version}, but the tree is kiosk-edge {found.group(1)}")
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BadInput(f"{key_file} is not an EC private key")
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as tar:
        for path in sorted(source.rglob("*")):
            if "__pycache__" in path.parts:
                continue
            tar.add(path, arcname=str(path.relative_to(source)), recursive=False)
    blob = payload.getvalue()
    manifest = {
        "schema": BUNDLE_SCHEMA,
        "name": "kiosk-edge",
        "version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "key_id": key_id,
        "payload": PAYLOAD,
        "payload_sha256": hashlib.sha256(blob).hexdigest(),
        "payload_size": len(blob),
        "notes": notes,
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    signature = base64.b64encode(key.sign(manifest_bytes, ec.ECDSA(hashes.SHA256())))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tarfile.open(tmp, "w") as tar:
        for name, data in ((MANIFEST, manifest_bytes), (SIGNATURE, signature), (PAYLOAD, blob)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)
    return manifest


def _trusted_keys(keys_dir: Path | None) -> dict[str, ec.EllipticCurvePublicKey]:
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    if keys_dir is None or not keys_dir.is_dir():
        return keys
    for path in sorted(keys_dir.glob("*.pem")):
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except ValueError:
            logger.warning("update key %s unreadable, ignored", path.name)
            continue
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
            keys[path.stem] = key
    return keys


def verify_bundle(bundle: Path, keys_dir: Path | None, *, label: str = "") -> dict[str, Any]:
    """The manifest of a bundle whose signature and payload hash check out; else UpdateRefused."""
    name = label or bundle.name
    keys = _trusted_keys(keys_dir)
    if not keys:
        raise UpdateRefused(f"no update signing keys are installed ({keys_dir})")
    try:
        with tarfile.open(bundle, "r:") as tar:
            members = {m.name: m for m in tar.getmembers()}
            if sorted(members) != sorted((MANIFEST, SIGNATURE, PAYLOAD)) or not all(
                m.isfile() for m in members.values()
            ):
                raise UpdateRefused(f"{name} is not an update bundle (unexpected members)")
            if members[MANIFEST].size > MAX_MANIFEST or members[PAYLOAD].size > MAX_PAYLOAD:
                raise UpdateRefused(f"{name}: a member is too large")
            manifest_bytes = _read(tar, members[MANIFEST])
            signature = _read(tar, members[SIGNATURE])
            try:
                manifest = json.loads(manifest_bytes)
            except ValueError as err:
                raise UpdateRefused(f"{name}: manifest is not JSON") from err
            if not isinstance(manifest, dict) or manifest.get("schema") != BUNDLE_SCHEMA:
                raise UpdateRefused(f"{name}: not a {BUNDLE_SCHEMA} manifest")
            key = keys.get(str(manifest.get("key_id")))
            if key is None:
                raise UpdateRefused(
                    f"{name} is signed by {manifest.get('key_id')!r}, not a trusted key"
                )
            try:
                key.verify(
                    base64.b64decode(signature, validate=True),
                    manifest_bytes,
                    ec.ECDSA(hashes.SHA256()),
                )
            except (InvalidSignature, ValueError) as err:
                raise UpdateRefused(f"{name}: bad signature") from err
            if not VERSION.match(str(manifest.get("version", ""))):
                raise UpdateRefused(f"{name}: bad version in the manifest")
            digest = hashlib.sha256()
            stream = tar.extractfile(members[PAYLOAD])
            assert stream is not None
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
            if digest.hexdigest() != manifest.get("payload_sha256"):
                raise UpdateRefused(f"{name}: payload does not match its signed hash")
    except (tarfile.TarError, OSError) as err:
        raise UpdateRefused(f"{name}: unreadable bundle: {err}") from err
    return manifest


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    stream = tar.extractfile(member)
    assert stream is not None
    return stream.read()


def _release_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's "data" filter (no absolute paths, no escapes, no devices), except that a
    venv's bin/python* may link to the system interpreter (/usr/bin/python3*)."""
    venv_python = (
        member.issym()
        and re.fullmatch(r"(.*/)?bin/python3?[.0-9]*", member.name) is not None
        and re.fullmatch(r"/usr/bin/python3[.0-9]*", member.linkname) is not None
    )
    if not HAS_TAR_FILTERS:
        return _data_filter_311(member, dest, allow_absolute_link=venv_python)
    if venv_python:
        return tarfile.tar_filter(member, dest)
    return tarfile.data_filter(member, dest)


# Extraction filters (PEP 706) came in Python 3.11.4; Debian 12 and Raspberry Pi OS Bookworm ship
# 3.11.2, where extractall() has no filter argument. There the same checks run in Python.
HAS_TAR_FILTERS = hasattr(tarfile, "data_filter")


class UnsafeMember(tarfile.TarError):
    """A payload member that the "data" filter would refuse (3.11.2 fallback)."""


def _data_filter_311(
    member: tarfile.TarInfo, dest: str, *, allow_absolute_link: bool = False
) -> tarfile.TarInfo:
    """What tarfile.data_filter refuses and changes, for Pythons without it: names or links that
    leave `dest`, absolute links, devices and FIFOs are refused; a leading "/" is dropped; set-id
    bits and group/other write bits are dropped (3.11.2 cannot leave a mode unset, so folders get
    0755-at-most too); ownership becomes the extracting user's."""
    dest = os.path.realpath(dest)
    name = member.name.lstrip("/" + os.sep)  # as data_filter: "/etc/x" lands at dest/etc/x
    if not name or os.path.isabs(name):
        raise UnsafeMember(f"{member.name!r} has an absolute path")
    target = os.path.realpath(os.path.join(dest, name))
    if os.path.commonpath([target, dest]) != dest:
        raise UnsafeMember(f"{name!r} would be extracted outside the release")
    if (
        member.ischr()
        or member.isblk()
        or member.isfifo()
        or not (member.isreg() or member.isdir() or member.issym() or member.islnk())
    ):
        raise UnsafeMember(f"{name!r} is a special file")
    if member.issym() or member.islnk():
        link = member.linkname
        if os.path.isabs(link) and not (member.issym() and allow_absolute_link):
            raise UnsafeMember(f"{name!r} links to an absolute path")
        if not (member.issym() and allow_absolute_link):
            base = os.path.dirname(target) if member.issym() else dest
            if os.path.commonpath([os.path.realpath(os.path.join(base, link)), dest]) != dest:
                raise UnsafeMember(f"{name!r} links outside the release")
    mode = member.mode
    if member.isreg() or member.islnk():
        mode = (mode & 0o755) | 0o600
        if not mode & 0o100:
            mode &= ~0o111  # as data_filter: executable only if the owner could execute
    elif member.isdir():
        mode = (mode & 0o755) | 0o700
    checked = copy.copy(member)  # TarInfo.replace() is 3.11.4+ too
    checked.name, checked.mode, checked.uid, checked.gid = name, mode, os.getuid(), os.getgid()
    checked.uname = checked.gname = ""
    return checked


def _extract_release(payload: tarfile.TarFile, staging: Path) -> None:
    if HAS_TAR_FILTERS:
        payload.extractall(staging, filter=_release_filter)
        return
    members = [_release_filter(m, str(staging)) for m in payload.getmembers()]
    payload.extractall(staging, members=[m for m in members if m is not None])


def release_name(manifest: dict[str, Any]) -> str:
    return f"{manifest['version']}-{manifest['payload_sha256'][:8]}"


# --- the installer -------------------------------------------------------------------------


@dataclass
class Installer:
    root: Path
    keys_dir: Path | None
    restart_command: list[str]
    health_url: str
    health_timeout_s: float = 90.0
    keep_releases: int = 3

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> Installer:
        u = config.update
        values = {
            "root": u.root,
            "keys_dir": u.keys_dir,
            "restart_command": list(u.restart_command),
            "health_url": u.health_url,
            "health_timeout_s": u.health_timeout_s,
            "keep_releases": u.keep_releases,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def journal_path(self) -> Path:
        return self.root / "update.json"

    def current(self) -> str | None:
        return self._target("current")

    def _target(self, link: str) -> str | None:
        path = self.root / link
        return Path(os.readlink(path)).name if path.is_symlink() else None

    # --- journal -------------------------------------------------------------------

    def journal(self) -> dict[str, Any]:
        try:
            return json.loads(self.journal_path.read_text())
        except (OSError, ValueError):
            return {"phase": "idle"}

    def _write_journal(self, **data: Any) -> None:
        data["at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        tmp = self.journal_path.with_name(".update.json.tmp")
        with tmp.open("w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.journal_path)
        fsync_dir(self.root)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".update.lock").open("w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as err:
                raise UpdateBusy("another update is running") from err
            yield

    # --- the switch ----------------------------------------------------------------

    def _point(self, link: str, release: str) -> None:
        """Atomically make root/<link> point at releases/<release> (one rename)."""
        tmp = self.root / f".{link}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(Path("releases") / release, tmp)
        os.replace(tmp, self.root / link)
        fsync_dir(self.root)

    def _restart(self) -> None:
        try:
            subprocess.run(self.restart_command, check=True, timeout=60, capture_output=True)
        except (OSError, subprocess.SubprocessError) as err:
            logger.error("restart command failed: %s", err)

    def healthy(self, version: str | None, timeout_s: float) -> tuple[bool, str]:
        """Poll the health URL until it answers ready (with this version, if it says one)."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while True:
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as response:
                    body = json.loads(response.read() or b"{}")
                if body.get("ready") and (
                    version is None or body.get("version") in (None, version)
                ):
                    return True, "ready"
                last = f"answered {body}"
            except urllib.error.HTTPError as err:
                last = f"HTTP {err.code}"
            except (urllib.error.URLError, OSError, ValueError) as err:
                last = str(getattr(err, "reason", err))
            if time.monotonic() >= deadline:
                return False, last
            time.sleep(0.2)

    # --- recovery --------------------------------------------------------------------

    def recover(self, *, restart: bool = True) -> dict[str, Any]:
        """After a crash mid-update: an uncommitted switch goes back; half-staged dirs go.
        restart=False at boot, before the daemon has started (kiosk-update-recover.service)."""
        with self._lock():
            return self._recover(restart=restart)

    def _recover(self, *, restart: bool = True) -> dict[str, Any]:
        for leftover in self.releases.glob(".staging-*") if self.releases.exists() else []:
            shutil.rmtree(leftover, ignore_errors=True)
        journal = self.journal()
        if journal.get("phase") not in ("switching", "switched"):
            return {"recovered": False, "current": self.current()}
        back = journal.get("from")
        if back and (self.releases / back).is_dir():
            self._point("current", back)
            logger.warning("uncommitted update rolled back after a restart", extra={"to": back})
            if restart:
                self._restart()
        self._write_journal(
            phase="rolled_back",
            to=back,
            rejected=journal.get("to"),
            reason="interrupted before the health check committed it",
        )
        return {"recovered": True, "current": self.current(), "rejected": journal.get("to")}

    # --- apply -------------------------------------------------------------------------

    def apply(self, bundle: Path) -> dict[str, Any]:
        with self._lock():
            # The bundle may sit in a directory the daemon's user can write (the fleet
            # command's queue): verify and unpack one private copy, so what was verified is
            # exactly what is installed, whatever happens to the original meanwhile.
            private = self.root / ".bundle.kup"
            try:
                fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as out, bundle.open("rb") as src:
                    shutil.copyfileobj(src, out)
            except OSError as err:
                private.unlink(missing_ok=True)
                raise UpdateRefused(f"cannot read the bundle {bundle}: {err}") from err
            try:
                return self._apply(private, bundle.name)
            finally:
                private.unlink(missing_ok=True)

    def _apply(self, bundle: Path, label: str) -> dict[str, Any]:
        # Verified before releases/ or current are touched.
        manifest = verify_bundle(bundle, self.keys_dir, label=label)
        self._recover()
        target = release_name(manifest)
        old = self.current()
        if old == target:
            return {"status": "already_current", "release": target}
        self._stage(bundle, manifest, target)
        self._write_journal(phase="switching", to=target, **{"from": old})
        self._point("current", target)
        if old:
            self._point("previous", old)
        self._write_journal(phase="switched", to=target, **{"from": old})
        logger.warning("switched to %s; waiting for the health check", target)
        self._restart()
        ok, why = self.healthy(manifest["version"], self.health_timeout_s)
        if ok:
            self._write_journal(phase="committed", to=target, **{"from": old})
            self._prune()
            logger.warning("update %s committed", target)
            return {"status": "committed", "release": target, "previous": old}
        logger.error("update %s unhealthy (%s); rolling back", target, why)
        if old:
            self._point("current", old)
            self._restart()
            back_ok, _ = self.healthy(None, self.health_timeout_s)
        else:
            back_ok = False
        self._write_journal(phase="rolled_back", to=old, rejected=target, reason=why)
        return {
            "status": "rolled_back",
            "release": old,
            "rejected": target,
            "reason": why,
            "healthy_after_rollback": back_ok,
        }

    def _stage(self, bundle: Path, manifest: dict[str, Any], target: str) -> None:
        final = self.releases / target
        if final.is_dir() and (final / ".release.json").exists():
            return  # staged by an earlier, interrupted attempt: complete (renamed last)
        self.releases.mkdir(parents=True, exist_ok=True)
        staging = self.releases / f".staging-{target}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            with tarfile.open(bundle, "r:") as outer:
                stream = outer.extractfile(PAYLOAD)
                assert stream is not None
                with tarfile.open(fileobj=stream, mode="r:gz") as payload:
                    _extract_release(payload, staging)
        except (tarfile.TarError, OSError) as err:
            shutil.rmtree(staging, ignore_errors=True)
            raise UpdateRefused(f"the payload cannot be unpacked safely: {err}") from err
        (staging / ".release.json").write_text(json.dumps(manifest, indent=2))
        for path in [*staging.rglob("*"), staging]:
            if path.is_file() and not path.is_symlink():
                with path.open("rb") as f:
                    os.fsync(f.fileno())
        for directory in sorted({p.parent for p in staging.rglob("*")} | {staging}):
            fsync_dir(directory)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        fsync_dir(self.releases)

    def _prune(self) -> None:
        keep = {self.current(), self._target("previous")}
        releases = sorted(
            (p for p in self.releases.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        kept = 0
        for path in releases:
            if path.name in keep or kept < self.keep_releases - len(keep):
                kept += path.name not in keep
                continue
            shutil.rmtree(path, ignore_errors=True)

    def status(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "current": self.current(),
            "previous": self._target("previous"),
            "journal": self.journal(),
            "releases": sorted(
                p.name for p in self.releases.glob("*") if p.is_dir() and not p.name.startswith(".")
            )
            if self.releases.exists()
            else [],
        }


# --- the fleet command's side: fetch, verify, queue for kiosk-update.service ------------------

QUEUED = "queued.kup"


def incoming_dir(config: cfg.Config) -> Path:
    """Where bundles wait for kiosk-update.path (queued.kup)."""
    return config.update.incoming_dir or config.storage.state_dir / "updates"


def queue_bundle(source: str, *, incoming: Path, keys_dir: Path | None) -> dict[str, Any]:
    """Fetch (https:// URL) or copy (absolute path, e.g. a USB stick) a bundle, verify it, and
    leave it as <incoming>/queued.kup, which kiosk-update.path hands to `kiosk update check`.
    Nothing is queued unless the signature and hash verify."""
    incoming.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = incoming / ".fetching.kup"
    try:
        if source.startswith("https://"):
            with urllib.request.urlopen(source, timeout=60) as response, tmp.open("wb") as f:
                total = 0
                while chunk := response.read(1 << 20):
                    total += len(chunk)
                    if total > MAX_PAYLOAD + MAX_MANIFEST + 64 * 1024:
                        raise UpdateRefused("the bundle is larger than any bundle may be")
                    f.write(chunk)
        elif Path(source).is_absolute():
            shutil.copyfile(source, tmp)
        else:
            raise BadInput("the bundle source must be an https:// URL or an absolute path")
        manifest = verify_bundle(tmp, keys_dir)
        os.replace(tmp, incoming / QUEUED)
        fsync_dir(incoming)
    except (OSError, urllib.error.URLError) as err:
        raise UpdateRefused(f"cannot fetch the bundle: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    return {"version": manifest["version"], "release": release_name(manifest)}
