"""Tool choice, parallel calls, arguments built from the schema, and answers to tool results."""

import json

import httpx
import pytest
from emulator_helpers import BOTH, MODEL, TOOLS, chat, error_of, stream, tool, user

from holysheep_core.emulator import reply_to


def calls(body: dict) -> list[tuple[str, dict]]:
    message = body["choices"][0]["message"]
    return [
        (call["function"]["name"], json.loads(call["function"]["arguments"]))
        for call in message.get("tool_calls") or ()
    ]


def test_auto_calls_the_matching_tool(client: httpx.Client) -> None:
    body = chat(client, messages=[user("Weather in Rome in fahrenheit?")], tools=TOOLS)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["id"].startswith("call_")
    assert choice["message"]["tool_calls"][0]["type"] == "function"
    assert calls(body) == [("get_weather", {"city": "Rome", "unit": "fahrenheit"})]


def test_camel_case_names_match_too(client: httpx.Client) -> None:
    body = chat(client, messages=[user("Quote me the stock of ACME")], tools=TOOLS)
    assert calls(body) == [("stockQuote", {"ticker": "ACME"})]


def test_auto_answers_in_text_when_nothing_matches(client: httpx.Client) -> None:
    body = chat(client, messages=[user("Tell me a joke")], tools=TOOLS)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"] == reply_to("Tell me a joke")
    assert "tool_calls" not in body["choices"][0]["message"]


def test_parallel_calls_every_matching_tool_in_declaration_order(client: httpx.Client) -> None:
    body = chat(client, messages=[user(BOTH)], tools=TOOLS)
    assert calls(body) == [
        ("get_weather", {"city": "Rome", "unit": "celsius"}),
        ("get_local_time", {"city": "Rome"}),
    ]
    ids = [call["id"] for call in body["choices"][0]["message"]["tool_calls"]]
    assert len(set(ids)) == 2


def test_without_parallel_calls_only_the_best_tool(client: httpx.Client) -> None:
    question = "What is the local time in Rome, and the weather?"
    body = chat(client, messages=[user(question)], tools=TOOLS, parallel_tool_calls=False)
    assert [name for name, _ in calls(body)] == ["get_local_time"]


def test_none_answers_in_text(client: httpx.Client) -> None:
    body = chat(client, messages=[user(BOTH)], tools=TOOLS, tool_choice="none")
    assert calls(body) == []
    assert body["choices"][0]["message"]["content"] == reply_to(BOTH)


def test_required_calls_the_best_match_else_the_first_tool(client: httpx.Client) -> None:
    body = chat(client, messages=[user("The share price?")], tools=TOOLS, tool_choice="required")
    assert [name for name, _ in calls(body)] == ["stockQuote"]
    body = chat(client, messages=[user("Tell me a joke")], tools=TOOLS, tool_choice="required")
    assert [name for name, _ in calls(body)] == ["get_weather"]


def test_a_named_function_is_called_whatever_the_message(client: httpx.Client) -> None:
    choice = {"type": "function", "function": {"name": "stockQuote"}}
    body = chat(client, messages=[user(BOTH)], tools=TOOLS, tool_choice=choice)
    assert calls(body) == [("stockQuote", {"ticker": "Rome"})]


def assistant_calls(*names: str) -> dict:
    tool_calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": "{}"}}
        for i, n in enumerate(names)
    ]
    return {"role": "assistant", "content": None, "tool_calls": tool_calls}


def test_tool_results_are_answered_in_text_that_includes_them(client: httpx.Client) -> None:
    messages = [
        user(BOTH),
        assistant_calls("get_weather", "get_local_time"),
        {"role": "tool", "tool_call_id": "call_0", "content": '{"sky": "clear"}'},
        {"role": "tool", "tool_call_id": "call_1", "content": "14:05"},
    ]
    body = chat(client, messages=messages, tools=TOOLS)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"] == (
        'Based on the tool results: get_weather returned {"sky": "clear"}; '
        "get_local_time returned 14:05"
    )
    # Forced to call again, it calls the tool not called yet, as a model would.
    forced = chat(client, messages=messages, tools=TOOLS, tool_choice="required")
    assert [name for name, _ in calls(forced)] == ["stockQuote"]


def test_a_forced_agent_loop_ends_with_its_structured_response_tool(
    client: httpx.Client,
) -> None:
    # What create_agent(response_format=...) sends: the tools plus a structured-response
    # tool, tool_choice "required" on every turn; the loop ends once that tool is called.
    report = tool("WeatherReport", "The final answer", {"summary": {"type": "string"}})
    tools = [*TOOLS, report]
    messages: list[dict] = [user("What is the weather in Rome?")]
    called = []
    for _ in range(len(tools)):
        body = chat(client, messages=messages, tools=tools, tool_choice="required")
        [(name, _)] = calls(body)
        called.append(name)
        if name == "WeatherReport":
            break
        message = body["choices"][0]["message"]
        messages += [
            message,
            {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "ok"},
        ]
    assert called[0] == "get_weather"  # the best match first
    assert called[-1] == "WeatherReport" and len(set(called)) == len(called) <= len(tools)


def test_arguments_follow_the_schema_and_the_message(client: httpx.Client) -> None:
    booking = tool(
        "book_table",
        "Book a restaurant table",
        {
            "restaurant": {"type": "string"},
            "guests": {"type": "integer", "minimum": 1},
            "hour": {"type": "number"},
            "terrace": {"type": "boolean"},
            "notes": {"type": "object", "properties": {"diet": {"enum": ["none", "vegan"]}}},
            "dishes": {"type": "array", "items": {"type": "string"}},
        },
    )
    message = 'Please book a table at "Chez Marie" for 4 guests at 19.5 with a terrace, vegan'
    body = chat(client, messages=[user(message)], tools=[booking])
    assert calls(body) == [
        (
            "book_table",
            {
                "restaurant": "Chez Marie",
                "guests": 4,
                "hour": 19.5,
                "terrace": True,
                "notes": {"diet": "vegan"},
                "dishes": [" ".join(message.split())],
            },
        )
    ]


def test_streamed_tool_calls_reassemble_into_the_json_ones(client: httpx.Client) -> None:
    expected = chat(client, messages=[user(BOTH)], tools=TOOLS)["choices"][0]["message"][
        "tool_calls"
    ]
    deltas = [
        delta
        for chunk in stream(client, messages=[user(BOTH)], tools=TOOLS)
        for delta in chunk["choices"][0]["delta"].get("tool_calls", ())
    ]
    openings = [d for d in deltas if "id" in d]
    assert [set(d) for d in openings] == [{"index", "id", "type", "function"}] * 2
    assert all(d["function"]["arguments"] == "" for d in openings)
    assert all(set(d) == {"index", "function"} for d in deltas if "id" not in d)
    arguments = ["", ""]
    for delta in deltas:
        arguments[delta["index"]] += delta["function"]["arguments"]
    assert arguments == [call["function"]["arguments"] for call in expected]
    assert [d["function"]["name"] for d in openings] == ["get_weather", "get_local_time"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"messages": [user("hi"), {"role": "tool", "tool_call_id": "x", "content": "1"}]},
            "messages[1].role",
        ),
        ({"messages": [user("hi"), assistant_calls("get_weather")]}, "messages[2].role"),
        (
            {
                "messages": [
                    user("hi"),
                    assistant_calls("a", "b"),
                    {"role": "tool", "tool_call_id": "call_0", "content": "1"},
                    user("and?"),
                ]
            },
            "messages[3].role",
        ),
        ({"tool_choice": "auto"}, "tool_choice"),
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": []}, "tools"),
        (
            {"tools": [{"type": "function", "function": {"name": "bad name"}}]},
            "tools[0].function.name",
        ),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ],
    ids=[
        "tool-without-call",
        "call-without-result",
        "result-missing",
        "choice-without-tools",
        "unknown-named-tool",
        "bad-choice",
        "empty-tools",
        "bad-tool-name",
        "bad-tool-type",
    ],
)
def test_invalid_tool_conversations_are_refused(
    client: httpx.Client, body: dict, param: str
) -> None:
    body = {"model": MODEL, "messages": [user("hi")], **body}
    assert error_of(client.post("/chat/completions", json=body), 400)["param"] == param
