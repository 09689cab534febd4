"""ClientConfig: arguments beat the environment, which beats defaults; bad settings refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from holysheep_core import (
    DEFAULT_BASE_URL,
    AsyncHolySheepClient,
    ClientConfig,
    ConfigurationError,
    HolySheepClient,
    RetryPolicy,
    Timeouts,
)
from holysheep_core.config import ENV_BASE_URL, ENV_KEY

CANARY_KEY = "hs-canary-config-3e1d"

BAD_KEYS = {
    "empty": "",
    "spaces only": "   ",
    "leading space": " hs-abc",
    "trailing newline": "hs-abc\n",
    "inner space": "hs-ab c",
    "tab": "hs-\tabc",
    "NUL": "hs-ab\x00c",
    "escape": "hs-ab\x1bc",
    "DEL": "hs-ab\x7fc",
    "non-ASCII": "hs-abç",
    "zero-width space": "hs-ab\u200bc",
}


def test_key_and_url_from_arguments() -> None:
    config = ClientConfig.resolve(api_key=CANARY_KEY, base_url="http://h:1/v1/", env={})
    assert isinstance(config.api_key, SecretStr)
    assert config.api_key.get_secret_value() == CANARY_KEY
    assert config.base_url == "http://h:1/v1"  # trailing slash dropped: paths start with /


def test_key_and_url_from_environment() -> None:
    env = {ENV_KEY: CANARY_KEY, ENV_BASE_URL: "http://env:2/v1"}
    config = ClientConfig.resolve(env=env)
    assert config.api_key.get_secret_value() == CANARY_KEY
    assert config.base_url == "http://env:2/v1"


def test_arguments_win_over_environment() -> None:
    env = {ENV_KEY: "hs-from-env", ENV_BASE_URL: "http://env:2/v1"}
    config = ClientConfig.resolve(api_key="hs-from-arg", base_url="http://arg:3/v1", env=env)
    assert config.api_key.get_secret_value() == "hs-from-arg"
    assert config.base_url == "http://arg:3/v1"


def test_secretstr_argument_accepted() -> None:
    config = ClientConfig.resolve(api_key=SecretStr(CANARY_KEY), env={})
    assert config.api_key.get_secret_value() == CANARY_KEY


def test_default_base_url_is_the_public_endpoint() -> None:
    assert ClientConfig.resolve(api_key=CANARY_KEY, env={}).base_url == DEFAULT_BASE_URL


def test_clients_read_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY, CANARY_KEY)
    monkeypatch.setenv(ENV_BASE_URL, "http://127.0.0.1:9/v1")
    with HolySheepClient() as client:
        assert client.base_url == "http://127.0.0.1:9/v1"
        assert client.config.api_key.get_secret_value() == CANARY_KEY
    assert AsyncHolySheepClient().base_url == "http://127.0.0.1:9/v1"


def test_missing_key_names_the_argument_and_the_variable() -> None:
    with pytest.raises(ConfigurationError) as info:
        ClientConfig.resolve(env={})
    assert "api_key=" in str(info.value)
    assert ENV_KEY in str(info.value)


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_a_key_that_cannot_be_right_is_refused(key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ClientConfig.resolve(api_key=key, env={})
    assert ENV_KEY in str(info.value)  # says where to look
    if key.strip():
        assert key.strip() not in str(info.value)  # and never shows the key itself
    with pytest.raises(ConfigurationError):
        ClientConfig.resolve(env={ENV_KEY: key})
    with pytest.raises(ConfigurationError):
        ClientConfig(api_key=SecretStr(key))  # the model itself checks too


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_a_bad_key_never_reaches_the_server(scripted: Any, key: str) -> None:
    with pytest.raises(ConfigurationError):
        HolySheepClient(api_key=key, base_url=scripted.url)
    with pytest.raises(ConfigurationError):
        AsyncHolySheepClient(api_key=key, base_url=scripted.url)
    assert scripted.requests == []


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        ClientConfig.resolve(api_key="", env={})


@pytest.mark.parametrize("url", ["api.holysheep.ai/v1", "ftp://h/v1", ""])
def test_base_url_needs_a_scheme(url: str) -> None:
    with pytest.raises(ConfigurationError):
        ClientConfig(api_key=SecretStr(CANARY_KEY), base_url=url or "  ")


def test_one_number_bounds_reads_and_keeps_connecting_short() -> None:
    config = ClientConfig.resolve(api_key=CANARY_KEY, timeout=30, env={})
    assert config.timeout == Timeouts(connect=5.0, read=30.0, write=30.0, pool=10.0)
    short = ClientConfig.resolve(api_key=CANARY_KEY, timeout=0.5, env={}).timeout
    assert short == Timeouts(connect=0.5, read=0.5, write=0.5, pool=0.5)


def test_timeouts_from_a_mapping_or_an_object() -> None:
    config = ClientConfig.resolve(api_key=CANARY_KEY, timeout={"pool": 0.25}, env={})
    assert config.timeout.pool == 0.25
    assert config.timeout.read == Timeouts().read
    t = Timeouts(read=3)
    assert ClientConfig.resolve(api_key=CANARY_KEY, timeout=t, env={}).timeout is t


def test_default_pool_timeout_surfaces_saturation_quickly() -> None:
    # Not httpx's "wait forever" nor a 600 s queue: saturation must show up as an error.
    assert Timeouts().pool <= 30


@pytest.mark.parametrize("timeout", [0, -1, True, "5", float("nan")])
def test_bad_timeout_refused(timeout: object) -> None:
    with pytest.raises(ConfigurationError):
        ClientConfig.resolve(api_key=CANARY_KEY, timeout=timeout, env={})


def test_bad_timeout_field_refused() -> None:
    with pytest.raises(ConfigurationError):
        ClientConfig.resolve(api_key=CANARY_KEY, timeout={"read": 0}, env={})


def test_max_retries_sets_the_retry_policy_and_keeps_the_rest() -> None:
    policy = RetryPolicy(max_retries=5, initial_delay=0.1)
    config = ClientConfig.resolve(api_key=CANARY_KEY, retry=policy, max_retries=1, env={})
    assert config.retry.max_retries == 1
    assert config.retry.initial_delay == 0.1


def test_negative_max_retries_refused() -> None:
    with pytest.raises(ConfigurationError):
        ClientConfig.resolve(api_key=CANARY_KEY, max_retries=-1, env={})


@pytest.mark.parametrize(
    "field", [{"max_connections": 0}, {"async_backend": "requests"}, {"keepalive_expiry": 0}]
)
def test_bad_settings_refused(field: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        ClientConfig.resolve(api_key=CANARY_KEY, env={}, **field)


def test_config_is_immutable() -> None:
    config = ClientConfig.resolve(api_key=CANARY_KEY, env={})
    with pytest.raises(ValueError):
        config.base_url = "http://other"  # type: ignore[misc]


def test_config_dumps_to_json_with_the_key_masked() -> None:
    config = ClientConfig.resolve(api_key=CANARY_KEY, on_retry=(print,), env={})
    dumped = config.model_dump_json()
    assert CANARY_KEY not in dumped
    assert '"api_key":"**********"' in dumped
    assert '"deepseek-v3.2":{"input":"0.42"' in dumped


def test_client_takes_a_whole_config_or_settings_not_both() -> None:
    config = ClientConfig.resolve(api_key=CANARY_KEY, env={})
    with HolySheepClient(config) as client:
        assert client.config is config
    with pytest.raises(TypeError):
        HolySheepClient(config, max_retries=1)


def test_a_misspelt_setting_is_refused_not_ignored() -> None:
    # A typo in a policy knob (budget_us for budget_usd) must not leave the budget off.
    with pytest.raises(ConfigurationError, match="budget_us"):
        ClientConfig.resolve(api_key="hs-abcdefgh", budget_us=5)
