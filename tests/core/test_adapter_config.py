"""adapter_config: the framework adapters' ``client_settings`` become ClientConfig fields,
and the shared client follows them (equal settings, one client; other settings, another)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from holysheep_core import (
    BreakerPolicy,
    Budget,
    ConfigurationError,
    HolySheepClient,
    InMemoryStore,
    Limit,
    PriceTable,
    RateLimits,
)
from holysheep_core.shared import adapter_config, shared_client

KEY = "hs-adapter-test-0000"
URL = "http://127.0.0.1:9/v1"  # never called: nothing here sends a request


def config(settings: dict[str, Any] | None, **given: Any) -> Any:
    return adapter_config(
        settings, api_key=KEY, base_url=URL, timeout=None, max_retries=None, **given
    )


def test_settings_become_config_fields() -> None:
    breaker = BreakerPolicy(failure_threshold=2)
    made = config(
        {"breaker": breaker, "budget_usd": "2.50", "fallback_models": ["deepseek-v3.2"]},
        default_headers={"x-team": "flock"},
    )
    assert made.breaker == breaker
    assert made.budget_usd == Decimal("2.50")
    assert made.fallback_models == ("deepseek-v3.2",)
    assert dict(made.default_headers) == {"x-team": "flock"}
    assert config(None) == config({})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"budget_us": 5}, r"unknown field\(s\) \['budget_us'\]"),
        ({"api_key": KEY}, r"\['api_key'\] have their own argument"),
        ({"max_retries": 3, "timeout": 5}, r"\['max_retries', 'timeout'\] have their own"),
        ({"default_headers": {"x": "y"}}, r"\['default_headers'\] have their own argument"),
        ({"budget_usd": "lots"}, "budget_usd"),
        ({"fallback_models": "deepseek-v3.2"}, "fallback_models"),
    ],
)
def test_bad_settings_are_refused_without_the_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        config(settings, default_headers={})
    assert KEY not in str(caught.value)


def test_an_injected_client_brings_its_own_config() -> None:
    with HolySheepClient(api_key=KEY, base_url=URL) as client:
        assert adapter_config(None, injected=client, api_key="ignored") is client.config
        with pytest.raises(ConfigurationError, match="injected client"):
            adapter_config({"budget_usd": 1}, injected=client)


@pytest.mark.parametrize(
    "settings",
    [
        {"breaker": BreakerPolicy(failure_threshold=3)},
        {"rate_limits": RateLimits(per_model={"gpt-4.1": Limit(requests_per_second=1)})},
        {"budget_usd": 3},
        {"budget_usd": Budget(3)},
        {"fallback_models": ["deepseek-v3.2"]},
        {"prices": PriceTable().with_prices({"my-model": {"input": "1", "output": "1"}})},
        {"on_usage": (print,)},
        {"policy_store": InMemoryStore()},
    ],
    ids=lambda s: next(iter(s)),
)
def test_each_setting_picks_its_own_shared_client(settings: dict[str, Any]) -> None:
    plain = shared_client(config(None))
    mine = shared_client(config(settings))
    assert mine is not plain
    assert shared_client(config(dict(settings))) is mine  # equal settings: the same client
