"""Properties: generated schemas get valid instances; any body gets a completion or an APIError."""

import json

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from holysheep_core.emulator import ValueSource, count_tokens, instance_for
from holysheep_core.emulator.errors import APIError
from holysheep_core.emulator.generation import complete
from holysheep_core.emulator.validation import ROLES, parse_chat_request
from holysheep_core.emulator.wire import Quirk, completion_body, completion_chunks

NAMES = st.text("abcdef_", min_size=1, max_size=6)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-1e3, 1e3) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
MESSAGE_TEXT = st.text(max_size=60) | st.just('Book "Le Cinq" in Paris for 2 at 19.5, vegan')


@st.composite
def _array(draw: st.DrawFn, items: st.SearchStrategy) -> dict:
    low = draw(st.integers(0, 2))
    schema = {"type": "array", "items": draw(items), "minItems": low}
    if draw(st.booleans()):
        schema["maxItems"] = draw(st.integers(low, 3))
    return schema


@st.composite
def _object(draw: st.DrawFn, values: st.SearchStrategy) -> dict:
    properties = draw(st.dictionaries(NAMES, values, max_size=3))
    required = (
        draw(st.lists(st.sampled_from(sorted(properties)), unique=True)) if properties else []
    )
    closed = draw(st.booleans())
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        **({"additionalProperties": False} if closed else {}),
    }


@st.composite
def _scalar(draw: st.DrawFn) -> dict:
    kind = draw(
        st.sampled_from(
            ["string", "boolean", "null", "integer", "number", "enum", "const", "nullable"]
        )
    )
    if kind == "enum":
        return {
            "enum": draw(
                st.lists(st.text(max_size=5) | st.integers(), min_size=1, max_size=3, unique=True)
            )
        }
    if kind == "const":
        return {"const": draw(JSON)}
    if kind == "nullable":
        return {"type": ["string", "null"]}
    schema: dict = {"type": kind}
    if kind == "string" and draw(st.booleans()):
        schema["maxLength"] = draw(st.integers(0, 4))
    if kind == "boolean" and draw(st.booleans()):
        schema["default"] = draw(st.booleans())
    if kind in ("integer", "number") and draw(st.booleans()):
        schema["minimum"] = draw(st.integers(-5, 5))
    if kind in ("integer", "number") and draw(st.booleans()):
        schema["maximum"] = draw(st.integers(6, 9))
    return schema


@st.composite
def _rooted(draw: st.DrawFn, schemas: st.SearchStrategy) -> dict:
    # "#/..." references resolve against the root, so definitions live there.
    schema = draw(schemas)
    return {"$defs": {"D": schema}, "$ref": "#/$defs/D"} if draw(st.booleans()) else schema


SCHEMAS = _rooted(
    st.recursive(
        _scalar(),
        lambda inner: (
            _object(inner)
            | _array(inner)
            | st.builds(lambda b: {"anyOf": b}, st.lists(inner, min_size=1, max_size=3))
        ),
        max_leaves=8,
    )
)


@settings(max_examples=150, deadline=None)
@given(SCHEMAS, MESSAGE_TEXT)
def test_generated_schemas_get_valid_instances(schema: dict, message: str) -> None:
    jsonschema.validate(instance_for(schema, ValueSource(message)), schema)


TOOL = st.fixed_dictionaries(
    {
        "type": st.just("function") | JSON,
        "function": st.fixed_dictionaries(
            {"name": NAMES | JSON},
            optional={"description": st.text(max_size=20) | JSON, "parameters": SCHEMAS | JSON},
        ),
    }
)
CALL = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["c1", "c2"]) | JSON,
        "type": st.just("function"),
        "function": st.fixed_dictionaries({"name": NAMES, "arguments": st.just("{}") | JSON}),
    }
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from([*ROLES, "wizard"])},
    optional={
        "content": MESSAGE_TEXT
        | st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "image_url", "audio"])},
                optional={"text": st.text(max_size=9) | JSON, "image_url": JSON},
            ),
            max_size=2,
        )
        | JSON,
        "tool_calls": st.lists(CALL, max_size=2) | JSON,
        "tool_call_id": st.sampled_from(["c1", "c2"]) | JSON,
        "name": st.text(max_size=5) | JSON,
        "reasoning_content": st.text(max_size=9) | JSON,
    },
)
BODY = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["deepseek-v3.2", "x-small-context", "deepseek-reasoner", "nope"])
        | JSON,
        "messages": st.lists(MESSAGE, max_size=4) | JSON,
    },
    optional={
        "max_tokens": st.integers(-1, 40) | JSON,
        "stop": st.text(max_size=3) | st.lists(st.text(max_size=3), max_size=5) | JSON,
        "n": st.integers(0, 3) | JSON,
        "tools": st.lists(TOOL, max_size=3) | JSON,
        "tool_choice": st.sampled_from(["auto", "none", "required"])
        | st.builds(lambda n: {"type": "function", "function": {"name": n}}, NAMES)
        | JSON,
        "parallel_tool_calls": st.booleans() | JSON,
        "response_format": st.sampled_from([{"type": "json_object"}, {"type": "text"}])
        | st.builds(
            lambda s: {"type": "json_schema", "json_schema": {"name": "x", "schema": s}},
            SCHEMAS | JSON,
        )
        | JSON,
        "thinking": st.sampled_from([{"type": "enabled"}, {"type": "disabled"}]) | JSON,
        "reasoning_effort": st.sampled_from(["none", "low", "high"]) | JSON,
        "stream": st.booleans() | JSON,
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}) | JSON,
        "temperature": st.floats(-1, 3) | JSON,
        "seed": st.integers() | JSON,
    },
)


@settings(max_examples=150, deadline=None)
@given(BODY | JSON)
def test_any_body_gets_a_consistent_completion_or_an_api_error(body: object) -> None:
    try:
        request = parse_chat_request(body)
    except APIError as error:
        assert 400 <= error.status < 500
        return
    completion = complete(request)
    rendered = completion_body(completion)
    json.dumps(rendered, allow_nan=False)
    usage = rendered["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    chunks = completion_chunks(completion, include_usage=True, quirks=frozenset(Quirk))
    for choice in rendered["choices"]:
        streamed = "".join(
            c["choices"][0]["delta"].get("content", "")
            for c in chunks
            if c["choices"] and c["choices"][0]["index"] == choice["index"]
        )
        content = choice["message"]["content"]
        assert streamed == (content or "")
        if request.max_tokens is not None:
            assert count_tokens(content or "") <= request.max_tokens
    assert chunks[-1]["usage"] == usage
