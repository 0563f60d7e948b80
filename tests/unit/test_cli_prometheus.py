"""`modelship run --prometheus-url`: where canary analyses query metrics."""

from __future__ import annotations

import pytest

from modelship.cli import parse_args


@pytest.fixture(autouse=True)
def no_url_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # `eval "$(make -s env)"` exports it for the local cluster; these tests set it themselves.
    monkeypatch.delenv("MODELSHIP_PROMETHEUS_URL", raising=False)


def test_without_flag_or_env_there_is_no_prometheus() -> None:
    assert parse_args(["run"]).prometheus_url == ""


def test_the_env_gives_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIP_PROMETHEUS_URL", "http://10.244.0.1:9090")
    assert parse_args(["run"]).prometheus_url == "http://10.244.0.1:9090"


def test_the_flag_wins_over_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIP_PROMETHEUS_URL", "http://from-env:9090")
    settings = parse_args(["run", "--prometheus-url", "https://prometheus.monitoring:9090"])
    assert settings.prometheus_url == "https://prometheus.monitoring:9090"


def test_an_address_without_a_scheme_is_refused_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["run", "--prometheus-url", "prometheus:9090"])
    assert "not an http:// or https:// URL: 'prometheus:9090'" in capsys.readouterr().err
