"""The documented generation rules: tokens and usage, text, stop, max_tokens, n, reasoning, JSON."""

import json

import httpx
import jsonschema
import pytest
from emulator_helpers import MODEL, cached_tokens, chat, error_of, user
from pydantic import BaseModel

from holysheep_core.emulator import (
    MESSAGE_OVERHEAD_TOKENS,
    answer_from_context,
    count_message_tokens,
    count_prompt_tokens,
    count_tokens,
    reply_to,
)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("   ", 0),
        ("Hello, world!", 4),
        ("it's 3.14", 6),
        ("snake_case_word", 1),
        ("Paris\n\n(France)", 4),
    ],
)
def test_count_tokens_counts_word_runs_and_other_characters(text: str, tokens: int) -> None:
    assert count_tokens(text) == tokens


def test_usage_adds_up_by_the_documented_rule(client: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello, world!", "name": "ann"},
    ]
    body = chat(client, messages=messages)
    usage = body["usage"]
    # 4 + "Be brief." (3) and 4 + "Hello, world!" (4) + "ann" (1).
    assert usage["prompt_tokens"] == 2 * MESSAGE_OVERHEAD_TOKENS + 3 + 4 + 1 == 16
    assert usage["prompt_tokens"] == count_prompt_tokens(messages)
    content = body["choices"][0]["message"]["content"]
    assert content == reply_to("Hello, world!")
    assert usage["completion_tokens"] == count_tokens(content) == 24
    assert usage["total_tokens"] == 40
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}


def test_tools_and_parts_count_in_the_prompt(client: httpx.Client) -> None:
    tools = [{"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}]
    parts = [
        {"type": "text", "text": "Look at this"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    messages = [{"role": "user", "content": parts}]
    usage = chat(client, messages=messages, tools=tools, tool_choice="none")["usage"]
    expected = MESSAGE_OVERHEAD_TOKENS + 3 + 85 + count_tokens(json.dumps(tools))
    assert usage["prompt_tokens"] == expected == count_prompt_tokens(messages, tools)


def test_a_repeated_leading_system_message_counts_as_cached(client: httpx.Client) -> None:
    system = {"role": "system", "content": "You are a helpful assistant for the Louvre."}
    assert cached_tokens(client, messages=[system, user("First question")]) == 0
    expected = count_message_tokens(system)
    assert expected == MESSAGE_OVERHEAD_TOKENS + 9
    assert cached_tokens(client, messages=[system, user("Another question")]) == expected
    assert cached_tokens(client, model="gpt-4.1", messages=[system, user("Other model")]) == 0
    assert cached_tokens(client, messages=[user("no system"), system]) == 0


def test_a_message_without_context_gets_a_short_reply_naming_it(client: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        user("Earlier question"),
        {"role": "assistant", "content": "Earlier answer"},
        user("What should I see in Lisbon?"),
    ]
    content = chat(client, messages=messages)["choices"][0]["message"]["content"]
    assert content == (
        'Noted: "What should I see in Lisbon?" — the HolySheep emulator keeps its replies '
        "short; a live model would say more."
    )
    for greeting in ("Hi", "hello there!", "Good morning", "  "):
        answer = chat(client, messages=[user(greeting)])["choices"][0]["message"]["content"]
        assert answer == "Hello! How can I help you today?"


def test_long_messages_are_quoted_up_to_the_limit(client: httpx.Client) -> None:
    content = chat(client, messages=[user("word " * 1000)])["choices"][0]["message"]["content"]
    assert content.count("word") == 32


ERAS = (
    "Paris is the capital of France. The Eiffel Tower was completed in 1889 for the World's "
    "Fair. It is 330 metres tall.\n- Gustave Eiffel's company built the tower."
)


@pytest.mark.parametrize(
    ("template", "question"),
    [
        # LlamaIndex's question-answering prompt.
        (
            "Context information is below.\n---------------------\n{context}\n"
            "---------------------\nGiven the context information and not prior knowledge, "
            "answer the query.\nQuery: {question}\nAnswer: ",
            "When was the Eiffel Tower completed?",
        ),
        # The usual LangChain retrieval prompt.
        ("Context: {context}\n\nQuestion: {question}", "When was the Eiffel Tower completed?"),
    ],
    ids=["llama-index", "langchain"],
)
def test_with_context_the_answer_is_the_best_matching_sentences(
    client: httpx.Client, template: str, question: str
) -> None:
    prompt = template.format(context=ERAS, question=question)
    content = chat(client, messages=[user(prompt)])["choices"][0]["message"]["content"]
    # "eiffel tower completed" is shared by the second sentence (3 words), "eiffel tower" by
    # the last (2): both, in the context's order; nothing of the prompt's own wording.
    assert content == (
        "The Eiffel Tower was completed in 1889 for the World's Fair. "
        "Gustave Eiffel's company built the tower."
    )


def test_a_context_that_does_not_match_says_so(client: httpx.Client) -> None:
    prompt = f"Context: {ERAS}\nQuestion: How do volcanoes erupt?"
    content = chat(client, messages=[user(prompt)])["choices"][0]["message"]["content"]
    assert content == "The provided context does not answer that question."


def test_stop_cuts_before_the_earliest_stop_sequence(client: httpx.Client) -> None:
    messages = [user("alpha beta gamma delta")]
    choice = chat(client, messages=messages, stop=["delta", " beta"])["choices"][0]
    assert choice["message"]["content"] == 'Noted: "alpha'
    assert choice["finish_reason"] == "stop"
    choice = chat(client, messages=messages, stop="gamma")["choices"][0]
    assert choice["message"]["content"] == 'Noted: "alpha beta '


def test_max_tokens_truncates_with_finish_reason_length(client: httpx.Client) -> None:
    body = chat(client, messages=[user("one two three four five six")], max_tokens=5)
    choice = body["choices"][0]
    assert choice["message"]["content"] == 'Noted: "one two'
    assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5
    newer_name = chat(client, messages=[user("one two three")], max_completion_tokens=2)
    assert newer_name["choices"][0]["message"]["content"] == "Noted:"


def test_max_tokens_that_fits_keeps_finish_reason_stop(client: httpx.Client) -> None:
    choice = chat(client, messages=[user("one two")], max_tokens=30)["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == (
        reply_to("one two"),
        "stop",
    )


def test_n_gives_n_documented_variants(client: httpx.Client) -> None:
    body = chat(client, messages=[user("Tell me more")], n=3)
    contents = [c["message"]["content"] for c in body["choices"]]
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    answer = reply_to("Tell me more")
    assert contents == [answer, f"Alternative 1: {answer}", f"Alternative 2: {answer}"]
    assert body["usage"]["completion_tokens"] == sum(map(count_tokens, contents))


def test_seed_is_echoed_and_temperature_changes_nothing(client: httpx.Client) -> None:
    cold = chat(client, temperature=0, seed=42)
    hot = chat(client, temperature=2, top_p=0.1, presence_penalty=1)
    assert cold["system_fingerprint"] == "fp_emulator_42"
    assert hot["system_fingerprint"] == "fp_emulator"
    assert cold["choices"] == [{**hot["choices"][0]}]


REASONING_TEXT = "The user asks about: Why is the sky blue?. I will answer briefly."


@pytest.mark.parametrize(
    "body",
    [
        {"thinking": {"type": "enabled"}},
        {"reasoning_effort": "low"},
        {"model": "deepseek-reasoner"},
        {"model": "claude-sonnet-4.5-thinking"},
    ],
    ids=["thinking", "reasoning_effort", "reasoner-name", "thinking-name"],
)
def test_reasoning_content_is_counted_in_completion_tokens(
    client: httpx.Client, body: dict
) -> None:
    result = chat(client, messages=[user("Why is the sky blue?")], **body)
    message = result["choices"][0]["message"]
    assert message["reasoning_content"] == REASONING_TEXT
    usage = result["usage"]
    reasoning = count_tokens(REASONING_TEXT)
    assert usage["completion_tokens_details"]["reasoning_tokens"] == reasoning
    assert usage["completion_tokens"] == reasoning + count_tokens(message["content"])


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reasoning_effort": "none"},
        {"model": "deepseek-reasoner", "thinking": {"type": "disabled"}},
    ],
)
def test_no_reasoning_without_asking(client: httpx.Client, body: dict) -> None:
    assert "reasoning_content" not in chat(client, **body)["choices"][0]["message"]


def test_max_tokens_covers_reasoning_first(client: httpx.Client) -> None:
    body = chat(client, messages=[user("Why?")], thinking={"type": "enabled"}, max_tokens=4)
    message = body["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": "",
        "reasoning_content": "The user asks about",
    }
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 4


TOOL_TURN = [
    user("What is the weather in Oslo?"),
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
]


def test_thinking_tool_loops_need_reasoning_sent_back(client: httpx.Client) -> None:
    response = client.post(
        "/chat/completions",
        json={"model": MODEL, "messages": TOOL_TURN, "thinking": {"type": "enabled"}},
    )
    error = error_of(response, 400)
    assert error["message"] == (
        "Missing `reasoning_content` field in the assistant message at message index 1."
    )
    sent_back = [TOOL_TURN[0], {**TOOL_TURN[1], "reasoning_content": "I need the weather."}]
    body = chat(client, messages=[*sent_back, TOOL_TURN[2]], thinking={"type": "enabled"})
    assert body["choices"][0]["message"]["content"] == (
        "Based on the tool results: get_weather returned sunny, 21 C"
    )
    # Without thinking, an assistant message may carry reasoning_content or not.
    chat(client, messages=TOOL_TURN)
    chat(client, messages=[*sent_back, TOOL_TURN[2]])


def test_json_object_answers_a_documented_object(client: httpx.Client) -> None:
    messages = [user("Reply in JSON: hello")]
    body = chat(client, messages=messages, response_format={"type": "json_object"})
    assert json.loads(body["choices"][0]["message"]["content"]) == {
        "answer": reply_to("Reply in JSON: hello")
    }
    response = client.post(
        "/chat/completions",
        json={
            "model": MODEL,
            "messages": [user("hello")],
            "response_format": {"type": "json_object"},
        },
    )
    assert "must contain the word 'json'" in error_of(response, 400)["message"]


class City(BaseModel):
    name: str
    population: int
    coastal: bool


class Trip(BaseModel):
    traveller: str
    nights: int
    budget: float
    cities: list[City]
    transport: str | None
    tags: list[str] = []


SCHEMAS = {
    "flat": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 5},
            "count": {"type": "integer", "minimum": 10, "maximum": 20},
            "ratio": {"type": "number"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "rainy": {"type": "boolean"},
        },
        "required": ["name", "count", "ratio", "unit", "rainy"],
        "additionalProperties": False,
    },
    "nested-pydantic": Trip.model_json_schema(),
    "nullable-and-arrays": {
        "type": "object",
        "properties": {
            "maybe": {"type": ["null", "integer"]},
            "ids": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3},
            "empty": {"type": "array", "maxItems": 0},
            "fixed": {"const": "v1"},
            "any": {},
            "padded": {"type": "string", "minLength": 200},
            "exclusive": {"type": "number", "exclusiveMaximum": 0},
        },
        "required": ["maybe", "ids", "empty", "fixed", "any", "padded", "exclusive"],
    },
    "recursive": {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
                "required": ["label", "children"],
            }
        },
        "$ref": "#/$defs/Node",
    },
}
QUESTION = 'Plan 3 nights for "Ann Lee" in Nice and Paris at 1250.5 euros, rainy, in fahrenheit.'


@pytest.mark.parametrize("name", SCHEMAS)
def test_json_schema_answers_are_valid_instances(client: httpx.Client, name: str) -> None:
    schema = SCHEMAS[name]
    response_format = {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}
    body = chat(client, messages=[user(QUESTION)], response_format=response_format)
    instance = json.loads(body["choices"][0]["message"]["content"])
    jsonschema.validate(instance, schema)


def test_json_schema_values_come_from_the_message(client: httpx.Client) -> None:
    schema = SCHEMAS["nested-pydantic"]
    response_format = {"type": "json_schema", "json_schema": {"name": "trip", "schema": schema}}
    body = chat(client, messages=[user(QUESTION)], response_format=response_format)
    trip = Trip.model_validate_json(body["choices"][0]["message"]["content"])
    assert trip.traveller == "Ann Lee"
    assert (trip.nights, trip.budget) == (3, 1250.5)
    assert trip.cities[0].name == "Nice"
    flat = {"type": "json_schema", "json_schema": {"name": "f", "schema": SCHEMAS["flat"]}}
    values = json.loads(
        chat(client, messages=[user(QUESTION)], response_format=flat)["choices"][0]["message"][
            "content"
        ]
    )
    assert values == {
        "name": "Ann L",
        "count": 10,
        "ratio": 1250.5,
        "unit": "fahrenheit",
        "rainy": True,
    }


def test_hard_wrapped_context_is_read_as_sentences() -> None:
    context = (
        "# Pricing\n\nCredits are sold at one yuan per dollar of usage, against a market rate"
        "\nnear 7.3 yuan per dollar. Every model has a price per million tokens: deepseek-v3.2"
        "\ncosts 0.42 dollars.\n- Refunds take a week.\n---------\nfile_path: pricing.md"
    )
    assert answer_from_context(context, "How are credits priced per million tokens?") == (
        "Credits are sold at one yuan per dollar of usage, against a market rate near 7.3 yuan "
        "per dollar. Every model has a price per million tokens: deepseek-v3.2 costs 0.42 dollars."
    )
    assert answer_from_context(context, "When are refunds made?") == "Refunds take a week."
