"""`kiosk update`: signed bundles, A/B switch with a health check, rollback, kill -9 midway.
Everything happens under a temp install root; the 'daemon' is a release's own tiny server,
restarted by a restart command as systemd would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge.cli import main as _kiosk
from provisioning.update import Installer, UpdateRefused, make_bundle, verify_bundle
from tests.conftest import free_port, write_sim_config
from tests.update_helpers import make_release, stop_server, stop_strays

REPO = Path(__file__).resolve().parent.parent


def kiosk(argv: list[str]) -> int:
    """The CLI in process; its exit code whether it returned or exited."""
    try:
        return _kiosk(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def write_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key


@dataclass
class Site:
    tmp: Path
    root: Path
    keys: Path
    signing_key: Path
    port: int
    config: Path

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/health"

    def restart_command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "tests.update_helpers",
            "restart",
            str(self.root),
            str(self.port),
        ]

    def installer(self, timeout: float = 5.0) -> Installer:
        return Installer(
            root=self.root,
            keys_dir=self.keys,
            restart_command=self.restart_command(),
            health_url=self.health_url,
            health_timeout_s=timeout,
        )

    def bundle(self, version: str, mode: str = "ok", **kw: Any) -> Path:
        source = make_release(self.tmp / "src" / f"{version}-{mode}", mode=mode, **kw)
        out = self.tmp / "bundles" / f"kiosk-edge-{version}-{mode}.kup"
        make_bundle(source, out, version=version, key_file=self.signing_key, key_id="center-2026")
        return out

    def cli_args(self, timeout: float = 5.0) -> list[str]:
        return [
            "--config", str(self.config),
            "--root", str(self.root),
            "--keys", str(self.keys),
            "--health-url", self.health_url,
            "--timeout", str(timeout),
            "--restart-command", " ".join(self.restart_command()),
        ]  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        return {
            str(p.relative_to(self.root)): (os.readlink(p) if p.is_symlink() else p.stat().st_size)
            for p in sorted(self.root.rglob("*"))
            if p.name not in ("server.pid", ".update.lock")
        }


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.chdir(REPO)  # the restart command runs `python -m tests.update_helpers`
    keys = tmp_path / "update-keys"
    keys.mkdir()
    signing = tmp_path / "center-2026.key"
    key = write_key(signing)
    (keys / "center-2026.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    s = Site(
        tmp_path,
        tmp_path / "opt" / "kiosk-edge",
        keys,
        signing,
        free_port(),
        write_sim_config(tmp_path / "kiosk"),
    )
    try:
        first = s.installer().apply(s.bundle("1.0.0"))
        assert first["status"] == "committed"
        yield s
    finally:
        stop_server(s.root)
        stop_strays(s.root)


def health(site: Site) -> dict[str, Any] | None:
    import urllib.request

    try:
        with urllib.request.urlopen(site.health_url, timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return None


def release_version(site: Site, link: str = "current") -> str:
    return json.loads((site.root / link / ".release.json").read_text())["version"]


def test_a_good_bundle_switches_and_keeps_the_previous_one(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = site.bundle("1.1.0")
    assert kiosk(["update", "apply", str(bundle), *site.cli_args(), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "committed"
    assert release_version(site) == "1.1.0" and release_version(site, "previous") == "1.0.0"
    assert (site.root / "current").is_symlink()
    assert os.readlink(site.root / "current" / ".venv" / "bin" / "python") == "/usr/bin/python3"
    assert health(site) == {"ready": True, "kiosk_id": "TEST-01", "version": "1.1.0"}
    assert json.loads((site.root / "update.json").read_text())["phase"] == "committed"
    # The same bundle again: nothing to do.
    assert site.installer().apply(bundle)["status"] == "already_current"


@pytest.mark.parametrize("mode", ["unhealthy", "crash"])
def test_a_bundle_that_fails_its_health_check_rolls_back(
    site: Site, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = site.bundle("2.0.0", mode)
    started = time.monotonic()
    code = kiosk(["update", "apply", str(bundle), *site.cli_args(timeout=2.0), "--json"])
    elapsed = time.monotonic() - started
    result = json.loads(capsys.readouterr().out)
    assert code == 1 and result["status"] == "rolled_back"
    assert result["rejected"].startswith("2.0.0-") and result["healthy_after_rollback"]
    assert release_version(site) == "1.0.0"
    assert health(site)["version"] == "1.0.0"  # the old version serves again
    assert elapsed < 2.0 + 5.0  # within N seconds (+ the old one's restart)
    assert json.loads((site.root / "update.json").read_text())["phase"] == "rolled_back"


def test_a_bad_signature_or_payload_is_refused_before_anything_is_touched(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = site.snapshot()
    # Signed by a key the kiosk does not trust, under a trusted key's name.
    rogue_key = tmp_path / "rogue.key"
    write_key(rogue_key)
    source = make_release(tmp_path / "rogue-src")
    forged = tmp_path / "forged.kup"
    make_bundle(source, forged, version="6.6.6", key_file=rogue_key, key_id="center-2026")
    # A good bundle whose payload was swapped after signing.
    good = site.bundle("1.2.0")
    swapped = tmp_path / "swapped.kup"
    with tarfile.open(good) as src, tarfile.open(swapped, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "payload.tar.gz":
                data = data[:-10] + b"\0" * 10
            member.size = len(data)
            import io

            dst.addfile(member, io.BytesIO(data))
    unknown = tmp_path / "unknown.kup"
    make_bundle(source, unknown, version="1.3.0", key_file=rogue_key, key_id="someone-else")
    for bundle, why in (
        (forged, "bad signature"),
        (swapped, "does not match"),
        (unknown, "not a trusted key"),
    ):
        with pytest.raises(UpdateRefused, match=why):
            verify_bundle(bundle, site.keys)
        code = kiosk(["update", "apply", str(bundle), *site.cli_args(), "--json"])
        assert code == 2
        assert why in capsys.readouterr().err
    assert site.snapshot() == before
    assert health(site)["version"] == "1.0.0"


def test_kill_9_in_the_middle_of_an_update_leaves_a_working_version(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """The apply process is killed while the new release is switched in but not yet proven
    healthy (its server starts slowly), and at a few other moments (bounded: 4 kills)."""
    slow = site.bundle("3.0.0", "slow", filler_bytes=4_000_000)
    cmd = [sys.executable, "-m", "edge", "update", "apply", str(slow), *site.cli_args(timeout=30)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for delay in (None, 0.05, 0.3, 0.6):
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            if delay is None:  # deterministic: right after the switch
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    journal = (site.root / "update.json").read_text()
                    if '"switched"' in journal:
                        break
                    time.sleep(0.005)
                else:
                    pytest.fail("the update never reached the switch")
            else:
                time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
        # Whatever the moment: 'current' is a whole release (never half-extracted) ...
        current = site.root / "current"
        assert current.is_symlink() and (current / ".release.json").exists()
        assert (current / "lib" / "module.py").read_text() == "VALUE = 1\n"
        # ... and recovery (run at boot, and first by every apply) ends on the committed one.
        # (The test's own restart command: never this machine's systemctl.)
        assert kiosk(["update", "recover", *site.cli_args(), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["current"].startswith("1.0.0-")
        assert release_version(site) == "1.0.0"
        assert site.installer().healthy("1.0.0", 10)[0]
        assert not list((site.root / "releases").glob(".staging-*"))


# --- the fleet command: central sends `update`, the kiosk queues a verified bundle ------------


def test_fleet_command_update_queues_only_a_verified_bundle(
    site: Site, tmp_path: Path, broker, fleet_pki, central, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.fleet import sign_command
    from edge.fleet.commands import write_public_key
    from tests.conftest import start_daemon
    from tests.mqtt_broker import assert_valid

    operator = ec.generate_private_key(ec.SECP256R1())
    me = fleet_pki.client("TEST-01")
    write_public_key(operator, tmp_path / "daemon" / "operators", "op.hanoi")
    config = write_sim_config(
        tmp_path / "daemon",
        extra=f"""
[mqtt]
type = "broker"
host = "127.0.0.1"
port = {broker.port}
ca_file = "{fleet_pki.ca_file}"
cert_file = "{me.cert}"
key_file = "{me.key}"
trust_dir = "operators"
reconnect_min_s = 0.2

[update]
keys_dir = "{site.keys}"
""",
    )
    base = "kiosk/v1/TEST-01"

    def send(args: dict[str, Any]) -> dict[str, Any]:
        envelope = sign_command(operator, "op.hanoi", "update", args, 300, target="TEST-01")
        central.publish(f"{base}/cmd/update", json.dumps(envelope))
        reply = central.wait_for(
            f"{base}/cmd/update/result", lambda m: m.json()["id"] == envelope["id"], timeout=15
        ).json()
        assert_valid(reply, "command-result")
        return reply

    forged = tmp_path / "forged.kup"
    rogue = tmp_path / "rogue.key"
    write_key(rogue)
    make_bundle(
        make_release(tmp_path / "r"), forged, version="9.9.9", key_file=rogue, key_id="center-2026"
    )
    good = site.bundle("1.5.0")
    daemon = start_daemon(config)
    try:
        central.wait_for(f"{base}/state", lambda m: m.json()["state"] == "online")
        assert send({"path": "relative/x.kup"})["reason"] == "bad_args"
        assert send({"path": str(forged)})["result"] == {"accepted": True}
        refused = central.wait_for(
            f"{base}/events", lambda m: m.json()["kind"] == "update.refused", timeout=15
        ).json()
        assert "bad signature" in refused["detail"]["reason"]
        incoming = tmp_path / "daemon" / "state" / "updates"
        assert not (incoming / "queued.kup").exists()
        assert send({"path": str(good)})["status"] == "ok"
        queued = central.wait_for(
            f"{base}/events", lambda m: m.json()["kind"] == "update.queued", timeout=15
        ).json()
        assert queued["detail"]["version"] == "1.5.0"
        assert (incoming / "queued.kup").exists()
    finally:
        daemon.stop()
    # kiosk-update.service's job: recover, then apply what was queued (and forget it).
    assert kiosk(["update", "check", *site.cli_args(), "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "committed"
    assert release_version(site) == "1.5.0" and not (incoming / "queued.kup").exists()


def test_make_bundle_refuses_a_version_other_than_the_trees(site: Site, tmp_path: Path) -> None:
    from edge.errors import BadInput

    source = make_release(tmp_path / "tree")
    (source / "edge").mkdir()
    (source / "edge" / "__init__.py").write_text('__version__ = "1.4.0"\n')
    with pytest.raises(BadInput, match=r"tree is kiosk-edge 1\.4\.0"):
        make_bundle(
            source,
            tmp_path / "x.kup",
            version="1.5.0",
            key_file=site.signing_key,
            key_id="center-2026",
        )
    manifest = make_bundle(
        source, tmp_path / "x.kup", version="1.4.0", key_file=site.signing_key, key_id="center-2026"
    )
    assert (
        verify_bundle(tmp_path / "x.kup", site.keys)["payload_sha256"] == manifest["payload_sha256"]
    )


def test_remote_set_config_cannot_touch_the_root_updaters_settings(tmp_path: Path) -> None:
    """The daemon's user may rewrite the config; the updater (root) must not be steered by it."""
    from types import SimpleNamespace

    from edge.fleet.commands import BadArgs
    from edge.remote_config import apply_config_change

    config = write_sim_config(tmp_path)
    before = config.read_bytes()
    holder = SimpleNamespace(config_path=config)  # what the handler reads before refusing
    for key, value in (
        ("update.restart_command", ["/bin/sh", "-c", "id"]),
        ("update.keys_dir", "/tmp/mine"),
        ("update.root", "/"),
    ):
        with pytest.raises(BadArgs, match="cannot be changed remotely"):
            apply_config_change(holder, {"changes": {key: value}})
    assert config.read_bytes() == before
    unit = (REPO / "systemd" / "kiosk-update.service").read_text()
    for flag in ("--root /opt/kiosk-edge", "--keys /etc/kiosk-update/keys", "--restart-command"):
        assert flag in unit  # the unit's own settings win over the config's


def _member(name: str, kind: bytes = tarfile.REGTYPE, *, link: str = "", mode: int = 0o644):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    info.uid = info.gid = 4242
    info.uname = info.gname = "someone"
    return info


REFUSED = "refused"
# Payload members a hostile or broken bundle could carry, and ordinary ones, with what tarfile's
# "data" filter (PEP 706) makes of them: refused, or extracted with this mode (None: the mode is
# left to the umask by the filter; the fallback sets one without group/other write).
MEMBERS = [
    (_member("/etc/cron.d/evil"), 0o644),  # the leading "/" is dropped: lands inside
    (_member("../evil"), REFUSED),
    (_member("app/../../evil"), REFUSED),
    (_member("app/link", tarfile.SYMTYPE, link="/etc/shadow"), REFUSED),
    (_member("app/link", tarfile.SYMTYPE, link="../../outside"), REFUSED),
    (_member("app/hard", tarfile.LNKTYPE, link="../outside"), REFUSED),
    (_member("app/dev", tarfile.CHRTYPE), REFUSED),
    (_member("app/blk", tarfile.BLKTYPE), REFUSED),
    (_member("app/fifo", tarfile.FIFOTYPE), REFUSED),
    (_member("app/setuid", mode=0o4777), 0o755),
    (_member("app/private", mode=0o600), 0o600),
    (_member("app/script.sh", mode=0o775), 0o755),
    (_member("app", tarfile.DIRTYPE, mode=0o777), None),
    (_member("app/inside", tarfile.SYMTYPE, link="script.sh"), None),
    # The one exception: a venv's python links to the system interpreter.
    (_member(".venv/bin/python3", tarfile.SYMTYPE, link="/usr/bin/python3.11"), None),
]


def _outcome(check: Any, member: tarfile.TarInfo, dest: Path) -> Any:
    try:
        return check(member, str(dest))
    except tarfile.TarError:
        return REFUSED


@pytest.mark.parametrize(
    ("member", "expected"), MEMBERS, ids=[f"{m.name}>{m.linkname}" for m, _ in MEMBERS]
)
def test_the_fallback_for_python_3_11_2_filters_as_tarfile_does(
    member: tarfile.TarInfo, expected: Any, tmp_path: Path
) -> None:
    """Debian 12 and Pi OS Bookworm ship Python 3.11.2, whose extractall() has no filter
    (a fresh machine's run of the update tests found it): the fallback must refuse and change
    what the 'data' filter does, with the venv's python link as the one exception."""
    from provisioning.update import _data_filter_311

    venv_python = member.name == ".venv/bin/python3"
    got = _outcome(
        lambda m, d: _data_filter_311(m, d, allow_absolute_link=venv_python), member, tmp_path
    )
    if hasattr(tarfile, "data_filter"):  # 3.11.4+: the table is what tarfile itself does
        real = _outcome(
            tarfile.tar_filter if venv_python else tarfile.data_filter, member, tmp_path
        )
        real_mode = real if real == REFUSED else (None if venv_python else real.mode)
        assert real_mode == expected
    if expected == REFUSED:
        assert got == REFUSED
        return
    assert got != REFUSED
    assert (got.name, got.type, got.linkname) == (
        member.name.lstrip("/"),
        member.type,
        member.linkname,
    )
    if expected is None:
        assert got.mode & 0o7022 == 0
    else:
        assert oct(got.mode) == oct(expected)
    assert (got.uid, got.gid) == (os.getuid(), os.getgid())  # never the bundle's owner
