"""The console's config loads like the kiosk's: FLEET_* overrides, paths relative to the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.config import load_config
from protocol.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "fleet.example.toml"


def test_environment_overrides_a_key_typed_and_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text("[web]\nport = 8091\n")
    config = load_config(path, env={"FLEET_WEB__PORT": "9123", "FLEET_ALERTS__PAPER": "false"})
    assert config.web.port == 9123 and config.alerts.paper is False
    assert load_config(None, env={"FLEET_WEB__PORT": "9124"}).web.port == 9124
    # Other prefixes and variables without a block are not ours.
    ignored = {"KIOSK_WEB__PORT": "1", "FLEET_PORT": "1", "FLEET_EVENTS": "x"}
    assert load_config(path, env=ignored).web.port == 8091


def test_a_bad_override_names_its_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, env={"FLEET_WEB__PORT": "nine"})
    (problem,) = info.value.problems
    assert problem.key == "web.port" and "FLEET_WEB__PORT" in problem.message
    with pytest.raises(ConfigError, match=r"web\.prot"):
        load_config(None, env={"FLEET_WEB__PROT": "1"})


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "fleet.toml"
    path.parent.mkdir()
    path.write_text(
        '[store]\nurl = "sqlite:///var/fleet.db"\ndata_key_file = "keys/data.key"\n'
        '[web]\nsecret_key_file = "/srv/secret.key"\n'
        '[mqtt]\nca_file = "../ca.crt"\n'
    )
    config = load_config(path, env={"FLEET_PROVISIONING__CA_DIR": "ca"})
    assert config.store.data_key_file == tmp_path / "etc" / "keys" / "data.key"
    assert config.store.url == f"sqlite:///{tmp_path / 'etc' / 'var' / 'fleet.db'}"
    assert config.web.secret_key_file == Path("/srv/secret.key")
    assert config.mqtt.ca_file == tmp_path / "ca.crt"
    assert config.provisioning.ca_dir == tmp_path / "etc" / "ca"
    # Keys not set keep their defaults; absolute and in-memory SQLite URLs stay as they are.
    assert config.provisioning.secrets_key_file == Path("fleet-claims.key")
    for url in ("sqlite:////srv/fleet.db", "sqlite://", "postgresql+psycopg://f@db/fleet"):
        path.write_text(f'[store]\nurl = "{url}"\n')
        assert load_config(path, env={}).store.url == url


def test_a_bad_key_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text('[store]\nurl = "sqlite://"\n\n[web]\nport = 8090\nprot = 1\nport2 = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    problems = {p.key: p for p in info.value.problems}
    assert problems["web.prot"].line == 6 and "unknown key" in problems["web.prot"].message
    assert problems["web.port2"].line == 7
    assert f"{path} is not valid: line 6: web.prot" in str(info.value)


def test_unreadable_files_and_syntax_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml", env={})
    path = tmp_path / "fleet.toml"
    path.write_text("[web\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.problems[0].line == 1
