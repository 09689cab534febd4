"""The fixed answers the loopback server gives, and the request every target sends.

The shapes follow what OpenAI-compatible servers send (DESIGN.md §3): a completion with
usage, and a stream of a role chunk, one chunk per token, a finish chunk, a usage chunk
with ``choices: []`` and ``[DONE]``.
"""

from __future__ import annotations

import json

__all__ = ["ANSWER", "API_KEY", "CHAT_JSON", "CHAT_SSE", "MODEL", "PROMPT", "STREAM_TOKENS"]

API_KEY = "hs-bench-0123456789abcdef"
MODEL = "deepseek-v3.2"
PROMPT = "Say hello."
ANSWER = "Hello! How can I help you today?"
STREAM_TOKENS = ("Hello", "!", " How", " can", " I", " help", " you", " today", "?")
USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": len(STREAM_TOKENS),
    "total_tokens": 12 + len(STREAM_TOKENS),
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
_HEAD = {"id": "chatcmpl-bench0001", "created": 1732400000, "model": MODEL}


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _completion() -> str:
    return _dumps(
        {
            **_HEAD,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
            "system_fingerprint": "fp_bench",
        }
    )


def _chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        **_HEAD,
        "object": "chat.completion.chunk",
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _stream() -> str:
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": token}) for token in STREAM_TOKENS]
    events.append(_chunk({}, "stop"))
    events.append(
        {
            **_HEAD,
            "object": "chat.completion.chunk",
            "system_fingerprint": "fp_bench",
            "choices": [],
            "usage": USAGE,
        }
    )
    return "".join(f"data: {_dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


CHAT_JSON = _completion()
CHAT_SSE = _stream()
