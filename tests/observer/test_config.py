from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from observer.cli import cli
from observer.config import Config, ConfigError, Secrets, decode_config, effective_config_text, load_config


def test_default_config_round_trips() -> None:
    cfg = Config()
    again = msgspec.json.decode(msgspec.json.encode(cfg), type=Config)
    assert again == cfg


def test_shipped_config_file_is_valid() -> None:
    cfg = load_config(Path(__file__).resolve().parents[2] / "config" / "observer.toml", env={})
    assert cfg.track_b.max_slots == 41
    assert cfg.track_a.sweep_interval_min == 10


def test_unknown_key_names_key_and_file() -> None:
    with pytest.raises(ConfigError) as e:
        decode_config("[writer]\nflush_interval = 150\n", "conf.toml")
    msg = str(e.value)
    assert "conf.toml" in msg and "flush_interval" in msg and "writer" in msg


def test_mistyped_key_names_expected_type() -> None:
    with pytest.raises(ConfigError) as e:
        decode_config('[writer]\nflush_interval_ms = "fast"\n', "conf.toml")
    msg = str(e.value)
    assert "writer.flush_interval_ms" in msg and "int" in msg and "conf.toml" in msg


def test_bad_toml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        decode_config("[writer\n", "conf.toml")


def test_env_overrides_data_and_runtime_dirs(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[clock]\nspeed = 2.0\n")
    cfg = load_config(path, env={"OBSERVER_DATA_DIR": "/x/data", "OBSERVER_RUNTIME_DIR": "/x/run"})
    assert cfg.paths.data_dir == "/x/data"
    assert cfg.paths.runtime_dir == "/x/run"
    assert cfg.clock.speed == 2.0


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_secrets_never_print() -> None:
    secrets = Secrets(
        {"KIS_APP_KEY": "PSabcdefghijkl", "KIS_APP_SECRET": "verysecretvalue", "KIS_ACCOUNT": "mock"}
    )
    assert "PSabcdefghijkl" not in repr(secrets.kis_app_key)
    assert "PSabcdefghijkl" not in f"{secrets.kis_app_key}"
    assert secrets.kis_app_key.reveal() == "PSabcdefghijkl"
    assert secrets.kis_account == "mock"
    text = effective_config_text(Config(), secrets)
    assert "PSabcdefghijkl" not in text and "verysecretvalue" not in text
    assert '"KIS_APP_KEY": "***"' in text


KEY1, SECRET1 = "PS" + "a" * 34, "s1" * 90
KEY2, SECRET2 = "PS" + "b" * 34, "s2" * 90


def test_numbered_kis_keys_in_order_masked_everywhere() -> None:
    env = {
        "KIS_APP_KEY_2": KEY2,
        "KIS_APP_SECRET_2": SECRET2,
        "KIS_APP_KEY_1": KEY1,
        "KIS_APP_SECRET_1": SECRET1,
    }
    secrets = Secrets(env)
    assert [(k.reveal(), s.reveal()) for k, s in secrets.kis_keys] == [(KEY1, SECRET1), (KEY2, SECRET2)]
    assert secrets.has_kis_credentials and secrets.missing_kis == []
    assert not secrets.kis_app_key  # the single-key variables stay what the environment says: unset
    assert {KEY1, SECRET1, KEY2, SECRET2} <= set(secrets.values())  # masked in every log line
    text = effective_config_text(Config(), secrets)
    assert not any(v in text for v in env.values())
    assert '"KIS_APP_KEY_2": "***"' in text and '"KIS_APP_SECRET_1": "***"' in text
    single = Secrets({"KIS_APP_KEY": KEY1, "KIS_APP_SECRET": SECRET1})
    assert [(k.reveal(), s.reveal()) for k, s in single.kis_keys] == [(KEY1, SECRET1)]
    assert "KIS_APP_KEY_1" not in effective_config_text(Config(), single)
    assert Secrets({"KIS_APP_KEY": KEY1}).kis_keys == () and Secrets({}).kis_keys == ()
    blank_single = Secrets(
        env | {"KIS_APP_KEY": "", "KIS_APP_SECRET": ""}
    )  # as the env file template leaves them
    assert len(blank_single.kis_keys) == 2


@pytest.mark.parametrize(
    ("env", "names"),
    [
        (
            {
                "KIS_APP_KEY": KEY1,
                "KIS_APP_SECRET": SECRET1,
                "KIS_APP_KEY_1": KEY2,
                "KIS_APP_SECRET_1": SECRET2,
            },
            "KIS_APP_KEY and KIS_APP_KEY_1",
        ),
        (
            {"KIS_APP_SECRET": SECRET1, "KIS_APP_KEY_1": KEY2, "KIS_APP_SECRET_1": SECRET2},
            "KIS_APP_SECRET and KIS_APP_KEY_1",
        ),
        (
            {
                "KIS_APP_KEY_1": KEY1,
                "KIS_APP_SECRET_1": SECRET1,
                "KIS_APP_KEY_3": KEY2,
                "KIS_APP_SECRET_3": SECRET2,
            },
            "KIS_APP_KEY_2 and KIS_APP_SECRET_2 are not set but key 3",
        ),
        (
            {"KIS_APP_KEY_2": KEY2, "KIS_APP_SECRET_2": SECRET2},
            "KIS_APP_KEY_1 and KIS_APP_SECRET_1 are not set",
        ),
        (
            {"KIS_APP_KEY_1": KEY1, "KIS_APP_SECRET_1": SECRET1, "KIS_APP_KEY_2": KEY2},
            "KIS_APP_SECRET_2 is not set but KIS_APP_KEY_2 is",
        ),
        (
            {
                "KIS_APP_KEY_1": KEY1,
                "KIS_APP_SECRET_1": SECRET1,
                "KIS_APP_SECRET_2": SECRET2,
                "KIS_APP_KEY_2": "",
            },
            "KIS_APP_KEY_2 is not set but KIS_APP_SECRET_2 is",
        ),
        ({"KIS_APP_KEY_01": KEY1, "KIS_APP_SECRET_01": SECRET1}, "KIS_APP_KEY_01: numbered"),
    ],
)
def test_numbered_kis_keys_errors_name_the_variable_never_the_value(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError) as e:
        Secrets(env)
    assert names in str(e.value)
    assert not any(v in str(e.value) for v in env.values() if v)


def test_sim_keys_are_validated_and_derived_in_kis_shape() -> None:
    for bad in ("0", "17", "-1"):
        with pytest.raises(ConfigError, match=r"sim\.keys"):
            decode_config(f"[sim]\nkeys = {bad}\n")
    sim = decode_config("[sim]\nkeys = 4\n").sim
    accounts = sim.accounts()
    assert accounts[0] == (sim.app_key, sim.app_secret) and len(accounts) == 4
    assert len({k for k, _ in accounts}) == len({s for _, s in accounts}) == 4
    assert all(len(k) == 36 and len(s) == 180 and k.startswith("PS") for k, s in accounts)
    assert decode_config("[sim]\nkeys = 4\n").sim.accounts() == accounts  # deterministic
    assert decode_config("[sim]\nkeys = 2\n").sim.accounts() == accounts[:2]


def test_bad_account_type_is_rejected() -> None:
    with pytest.raises(ConfigError, match="KIS_ACCOUNT"):
        Secrets({"KIS_ACCOUNT": "paper"})


def test_config_check_cli_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[writer]\nflush_interval_ms = 120\n")
    monkeypatch.setenv("KIS_APP_KEY", "APPKEY-0123456789")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:TELEGRAMTOKEN")
    result = CliRunner().invoke(cli, ["--config", str(path), "config", "check"])
    assert result.exit_code == 0, result.output
    assert '"flush_interval_ms": 120' in result.output
    assert "APPKEY-0123456789" not in result.output and "TELEGRAMTOKEN" not in result.output


def test_config_check_cli_bad_config_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[nonsense]\nx = 1\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "config", "check"])
    assert result.exit_code == 2
    assert "nonsense" in result.output and str(path) in result.output


def test_config_check_validates_times_of_day(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    for text, where in (
        ('[track_b]\nstart = "9:30"\n', "track_b.start"),
        ('[housekeeping]\nretention_at = "24:00"\n', "housekeeping.retention_at"),
        ('[track_a]\nstart = "15:40"\n', "track_a.end 15:30:00 is not after track_a.start 15:40:00"),
    ):
        path.write_text(text)
        result = CliRunner().invoke(cli, ["--config", str(path), "config", "check"])
        assert result.exit_code == 2, text
        assert where in result.output and str(path) in result.output
    path.write_text('[track_b]\nstart = "09:35"\nend = 14:50:00\n[universe]\nbuild_at = "08:15"\n')
    result = CliRunner().invoke(cli, ["--config", str(path), "config", "check"])
    assert result.exit_code == 0, result.output
    assert '"start": "09:35:00"' in result.output and '"build_at": "08:15:00"' in result.output


def test_shipped_demo_config_is_valid_and_keeps_demo_data_apart() -> None:
    repo = Path(__file__).resolve().parents[2]
    demo = load_config(repo / "config" / "demo.toml", env={})
    prod = load_config(repo / "config" / "observer.toml", env={})
    assert demo.clock.mode == "session" and prod.clock.mode == "real"
    assert demo.paths.data_dir != prod.paths.data_dir
    assert demo.paths.universe_dir != prod.paths.universe_dir
