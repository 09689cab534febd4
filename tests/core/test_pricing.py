"""Prices per million tokens, overridable; cost from reported usage; unknown means None."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from holysheep_core import ClientConfig, HolySheepClient, ModelPrice, ModelProfile, PriceTable
from holysheep_core.types import Usage

# DESIGN.md §4, from the provider's guide: USD per million tokens, one rate in and out.
GUIDE_PRICES = {
    "deepseek-v3.2": "0.42",
    "gpt-4.1": "8.00",
    "claude-sonnet-4.5": "15.00",
    "gemini-2.5-flash": "2.50",
}
GUIDE_CONTEXT = {
    "deepseek-v3.2": 128_000,
    "gpt-4.1": 1_047_576,
    "claude-sonnet-4.5": 200_000,
    "gemini-2.5-flash": 1_048_576,
}
MILLION = 1_000_000


def usage(prompt: int, completion: int, cached: int = 0) -> Usage:
    return Usage.model_validate(
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
    )


@pytest.mark.parametrize(("model", "rate"), GUIDE_PRICES.items())
def test_default_table_is_seeded_from_the_guide(model: str, rate: str) -> None:
    price = PriceTable().price(model)
    assert price == ModelPrice(Decimal(rate), Decimal(rate), None)


@pytest.mark.parametrize(("model", "window"), GUIDE_CONTEXT.items())
def test_default_profiles_carry_the_public_context_windows(model: str, window: int) -> None:
    profile = PriceTable().profile(model)
    assert isinstance(profile, ModelProfile)
    assert profile.context_window == window
    assert 0 < profile.max_output_tokens <= window


# The adapters' default embedding models: public list prices (USD per million input tokens).
EMBEDDING_LIST_PRICES = {
    "text-embedding-3-small": "0.02",
    "text-embedding-3-large": "0.13",
    "text-embedding-ada-002": "0.10",
}


def test_the_table_lists_the_guide_models_and_the_default_embedding_models() -> None:
    assert PriceTable().models == sorted({**GUIDE_PRICES, **EMBEDDING_LIST_PRICES})


@pytest.mark.parametrize(("model", "rate"), EMBEDDING_LIST_PRICES.items())
def test_embedding_models_are_priced_at_their_list_price(model: str, rate: str) -> None:
    table = PriceTable()
    assert table.cost(model, usage(MILLION, 0)) == Decimal(rate)
    assert table.profile(model) is None  # not a chat model


def test_embedding_prices_can_be_overridden() -> None:
    table = PriceTable().with_prices({"text-embedding-3-small": {"input": "0.05"}})
    assert table.cost("text-embedding-3-small", usage(MILLION, 0)) == Decimal("0.05")


@pytest.mark.parametrize("name", ["DeepSeek-V3.2", "GPT-4.1", "Claude-Sonnet-4.5"])
def test_names_match_whatever_their_case(name: str) -> None:
    table = PriceTable()
    known = name.lower()
    assert table.price(name) == table.price(known)
    assert table.profile(name) == table.profile(known)
    assert table.canonical(name) == known


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("claude-sonnet-4.5-20250929", "claude-sonnet-4.5"),
        ("deepseek-v3.2-0324", "deepseek-v3.2"),
        ("Gemini-2.5-Flash-latest", "gemini-2.5-flash"),
    ],
)
def test_a_dated_snapshot_is_priced_like_its_model(name: str, family: str) -> None:
    table = PriceTable()
    assert table.price(name) == table.price(family)
    assert table.profile(name) == table.profile(family)


@pytest.mark.parametrize(
    ("name", "closest"),
    [("gpt-4.1-mini", None), ("gemini-2.5-flash-lite", "gemini-2.5-flash"), ("gpt4.1", "gpt-4.1")],
)
def test_another_model_of_a_family_is_unknown_not_priced_like_it(
    name: str, closest: str | None
) -> None:
    table = PriceTable()
    assert table.price(name) is None and table.profile(name) is None
    assert table.cost(name, usage(10, 10)) is None
    assert table.canonical(name) == name
    assert table.closest(name) == closest


def test_profiles_state_which_response_formats_each_model_honours() -> None:
    # What each upstream documents for its OpenAI-compatible endpoint.
    table = PriceTable()
    formats = {
        model: (table.profile(model).supports_json_schema, table.profile(model).supports_json_mode)
        for model in GUIDE_PRICES
    }
    assert formats == {
        "deepseek-v3.2": (False, True),
        "gpt-4.1": (True, True),
        "claude-sonnet-4.5": (False, False),
        "gemini-2.5-flash": (True, True),
    }


@pytest.mark.parametrize(("model", "rate"), GUIDE_PRICES.items())
def test_a_million_tokens_each_way_costs_twice_the_rate(model: str, rate: str) -> None:
    assert PriceTable().cost(model, usage(MILLION, MILLION)) == 2 * Decimal(rate)


def test_cost_is_exact_decimal_arithmetic() -> None:
    # 11 * 0.42 / 1e6 + 7 * 0.42 / 1e6 without binary float noise.
    assert PriceTable().cost("deepseek-v3.2", usage(11, 7)) == Decimal("0.00000756")


def test_input_output_and_cached_prices_are_separate() -> None:
    table = PriceTable({"m": ModelPrice.of("2", "10", "0.5")})
    # 600 uncached * 2 + 400 cached * 0.5 + 100 out * 10 = 1200 + 200 + 1000
    assert table.cost("m", usage(1000, 100, cached=400)) == Decimal(2400) / MILLION


def test_cached_tokens_cost_the_input_price_when_no_cached_price_is_set() -> None:
    table = PriceTable({"m": ModelPrice.of("2", "10")})
    assert table.cost("m", usage(1000, 0, cached=400)) == table.cost("m", usage(1000, 0))


def test_cached_count_is_clamped_to_the_prompt() -> None:
    table = PriceTable({"m": ModelPrice.of("2", "10", "0")})
    assert table.cost("m", usage(100, 0, cached=500)) == Decimal(0)
    assert table.cost("m", usage(100, 0, cached=-5)) == Decimal(200) / MILLION


def test_unknown_model_costs_none_not_zero() -> None:
    table = PriceTable()
    assert table.price("mystery-model") is None
    assert table.profile("mystery-model") is None
    assert table.cost("mystery-model", usage(10, 10)) is None
    assert table.estimate("mystery-model", 10, 10) is None


def test_no_usage_costs_none() -> None:
    assert PriceTable().cost("gpt-4.1", None) is None


def test_dated_variants_are_priced_like_their_family() -> None:
    table = PriceTable()
    assert table.price("gpt-4.1-2025-04-14") == table.price("gpt-4.1")
    assert table.profile("gpt-4.1-2025-04-14") == table.profile("gpt-4.1")


def test_the_longest_known_prefix_wins() -> None:
    table = PriceTable().with_prices({"gpt-4.1-mini": {"input": "0.4", "output": "1.6"}})
    assert table.price("gpt-4.1-mini-2025").input == Decimal("0.4")
    assert table.price("gpt-4.1-2025").input == Decimal("8.00")


def test_override_merges_with_the_existing_price() -> None:
    base = PriceTable()
    table = base.with_prices({"gpt-4.1": {"cached_input": "2"}})
    assert table.price("gpt-4.1") == ModelPrice.of("8.00", "8.00", "2")
    assert base.price("gpt-4.1").cached_input is None  # tables are immutable


def test_a_new_model_needs_input_and_output() -> None:
    with pytest.raises(ValueError, match="'new-model'"):
        PriceTable().with_prices({"new-model": {"input": 1}})


def test_override_with_a_model_price() -> None:
    table = PriceTable().with_prices({"new-model": ModelPrice.of(1, 2)})
    assert table.cost("new-model", usage(MILLION, MILLION)) == Decimal(3)


def test_overrides_from_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "deepseek-v3.2": {"output": 1.68},
                "local-llama": {"input": 0, "output": 0},
            }
        )
    )
    table = PriceTable.from_file(path)
    assert table.price("deepseek-v3.2") == ModelPrice.of("0.42", "1.68")
    assert table.cost("local-llama", usage(10, 10)) == Decimal(0)  # known free is 0
    assert table.price("gpt-4.1") == PriceTable().price("gpt-4.1")  # the rest untouched


def test_client_takes_a_price_table() -> None:
    table = PriceTable().with_prices({"gpt-4.1": {"input": "1", "output": "1"}})
    with HolySheepClient(api_key="hs-x", base_url="http://127.0.0.1:9/v1", prices=table) as c:
        assert c.prices is table
        assert c.prices.cost("gpt-4.1", usage(MILLION, 0)) == Decimal(1)
    config = ClientConfig.resolve(api_key="hs-x", prices=table, env={})
    assert config.prices is table


def test_profiles_can_be_overridden() -> None:
    table = PriceTable().with_profiles({"local-llama": ModelProfile(8192, 2048)})
    assert table.profile("local-llama").context_window == 8192
    assert table.profile("gpt-4.1") == PriceTable().profile("gpt-4.1")


def test_estimate_is_an_upper_bound_without_cache_discount() -> None:
    table = PriceTable({"m": ModelPrice.of("2", "10", "0")})
    assert table.estimate("m", 1000, 100) == Decimal(3000) / MILLION
    assert table.estimate("m", 1000, 100) >= table.cost("m", usage(1000, 100, cached=1000))


def test_tables_compare_and_hash_by_content() -> None:
    assert PriceTable() == PriceTable()
    assert hash(PriceTable()) == hash(PriceTable())
    assert PriceTable() != PriceTable().with_prices({"x": {"input": 1, "output": 1}})
