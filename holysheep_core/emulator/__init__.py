"""A local, OpenAI-compatible emulator of the HolySheep API, with fault injection.

``with Emulator() as url:`` serves ``POST /v1/chat/completions`` (JSON and SSE),
``POST /v1/embeddings``, ``GET /v1/models``, ``GET /v1/models/{id}`` and ``GET /health`` on
a free loopback port; ``serve()`` does the same in the foreground for the command line.
Answers are deterministic and follow the documented rules below; nothing recognises a
particular prompt.

Requests and responses
    ``emu.requests`` holds the latest ``keep_requests`` requests (1,000 by default, None:
    all; ``serve()`` and ``holysheep emulator`` keep none), so memory stays bounded however
    long it runs; the prompt cache keeps 1,024 entries. ``emu.active_requests`` and
    ``emu.open_connections`` count what the server sees; a client that leaves mid-request
    ends the server's work on it (the handler is cancelled).
    Every response has ``x-request-id`` (``req_...``) and ``x-ratelimit-{limit,remaining,
    reset}-{requests,tokens}`` (a one-minute window of 10,000 requests and 2,000,000
    tokens that never runs out). ``/v1/`` needs ``Authorization: Bearer KEY``: the server's
    ``api_key`` if it has one, else any non-empty key; otherwise 401. Invalid bodies get
    the API's 400 (404 for an unknown model), an unknown top-level parameter too
    (``Unrecognized request argument supplied: NAME``; the known ones are
    ``validation.CHAT_PARAMETERS`` and ``EMBEDDING_PARAMETERS``), all errors with the body
    ``{"error": {"message", "type", "code", "param"}}``.

Models
    ``deepseek-v3.2`` (128,000-token window, 8,192 output), ``gpt-4.1`` (1,047,576 /
    32,768), ``claude-sonnet-4.5`` (200,000 / 64,000), ``gemini-2.5-flash`` (1,048,576 /
    65,536) are listed. Also served, unlisted: any id ending ``-small-context`` (1,000-token
    window) and any id containing ``reasoner`` or ``thinking``. A prompt whose tokens (plus
    ``max_tokens`` when given) exceed the window gets 400 ``context_length_exceeded``;
    ``max_tokens`` above the model's output limit gets 400. Embeddings accept any model id.

Tokens and usage
    ``count_tokens(text)``: each ``\\w+`` run and each other non-space character is one
    token. A message costs ``MESSAGE_OVERHEAD_TOKENS`` (4) + its text + 85 per image part +
    its ``name``, ``reasoning_content`` and tool calls' names and arguments;
    ``prompt_tokens`` = the messages + the JSON text of ``tools`` (``count_prompt_tokens``).
    ``completion_tokens`` = the tokens of every choice's ``reasoning_content``, ``content``
    and tool call arguments; ``reasoning_tokens`` is the reasoning part of it.
    ``cached_tokens``: when the first message is a system (or developer) message that this
    server saw before as the first message to the same model, its message tokens;
    else 0.

Text (``answers``)
    After tool results: ``"Based on the tool results: NAME returned CONTENT; ..."``. With
    context, i.e. a last user message holding a line that starts ``Query:`` or
    ``Question:`` (LlamaIndex's and the usual LangChain RAG prompts) after some text: the
    (at most 2) sentences of that text sharing the most content words with the question,
    in their order (``answer_from_context``; ``"The provided context does not answer that
    question."`` when none shares one). Otherwise ``reply_to``: ``"Hello! How can I help
    you today?"`` for an empty or greeting-only message, else ``Noted: "QUESTION" — the
    HolySheep emulator keeps its replies short; a live model would say more.`` (the question
    cut to 32 tokens).
    Choice ``i`` of ``n`` (i >= 1) is prefixed ``"Alternative i: "``. ``stop`` cuts the content
    before the earliest stop sequence (``finish_reason: "stop"``); ``max_tokens`` (or
    ``max_completion_tokens``) caps the reasoning, content and arguments of each choice
    together, cutting them with ``finish_reason: "length"``. ``seed`` appears in
    ``system_fingerprint`` (``fp_emulator_SEED``); ``temperature``, ``top_p`` and the
    penalties are checked but change nothing: the output is always the same.

Reasoning
    With ``"thinking": {"type": "enabled"}``, a ``reasoning_effort`` other than ``none``,
    or a model id containing ``reasoner``/``thinking`` (unless thinking is disabled), the
    message has ``reasoning_content``: ``"The user asks about: <first 16 tokens of the last
    user message>. I will answer briefly."``. As DeepSeek does, an assistant
    message with tool calls after the last user message must then carry
    ``reasoning_content`` (else 400).

Tools
    Match score of a tool: the distinct content words (``content_words``: split at
    non-letters and camelCase, lower-cased, a plural ``s`` dropped, common words left out)
    its name and description share with the last user message. ``tool_choice``: ``none`` →
    text; a named function → that call; ``required`` → the best-scoring tool among those
    not called since the last user message (ties and no match: the first declared; when all
    were called, among all again), so a forced agent loop reaches every tool, a
    structured-response tool included, in at most as many turns as it has tools; ``auto``
    (the default) → text when the last message is a tool result, else the tools scoring
    above zero: each of them, in declaration order, unless ``parallel_tool_calls`` is false
    (then the best), or text when none scores. Call ids
    are ``call_...``, ``finish_reason`` is ``tool_calls`` and content is null.

Values for schemas (tool arguments, ``json_schema`` output)
    Built from the tool's or format's JSON schema and the last user message (see
    ``instance_for``): properties in order; numbers take the message's numbers in order
    (integers truncated, clamped to bounds); strings take quoted phrases, then capitalised
    phrases not starting a sentence, then the whole message; an enum takes the value the
    message mentions, else its first; a boolean is true when its property name's words
    appear; arrays hold ``max(minItems, 1)`` items; ``anyOf`` takes its first non-null
    branch; local ``$ref`` are followed. Every choice of ``n`` holds the same value; a schema
    the builder cannot follow is refused with 400. ``{"type": "json_object"}`` answers
    ``{"answer": "<the text answer>"}`` (and, as the API does, needs "json" in a message).

Streaming
    ``data: {chunk}`` events (see ``wire.completion_chunks``): a ``role`` delta, then
    ``reasoning_content``, ``content`` and tool call deltas of ``TOKENS_PER_CHUNK`` (3)
    tokens, a ``finish_reason`` chunk, with ``stream_options.include_usage`` a last
    ``choices: []`` chunk with usage, then ``data: [DONE]``. Per request, header
    ``x-emulator-quirks: no-tool-index,usage-every-chunk`` (or ``Emulator(quirks=...)``)
    drops tool call delta indexes or puts the usage so far on every chunk.

Embeddings
    ``input`` a string or a list of strings; ``dimensions`` defaults to 256;
    ``encoding_format`` ``float`` or ``base64``. Vectors are L2-normalised, feature-hashed
    bags of content words (``embed``): the same text always gives the same vector, and
    texts sharing words are close. Usage counts ``count_tokens`` of the inputs.

Faults
    Per request with header ``x-emulator-fault`` (grammar in ``faults``), or per server:
    ``Emulator(faults=[...])`` and ``emu.inject(fault, times)``, each request taking the
    earliest pending fault that matches it: any ``/v1/`` path, or only ``fault.at(path)``;
    stream faults wait for a streaming chat request (and, in a header, refuse any other
    with 400). Faults act after authentication, before validation. See ``Fault``'s
    constructors for the modes.
"""

from .answers import answer_from_context, answer_text, reply_to
from .catalog import MODELS, ModelInfo, find_model
from .embeddings import embed
from .faults import Fault, FaultKind
from .runner import Emulator, serve
from .server import FAULT_HEADER, QUIRKS_HEADER
from .state import RecordedRequest
from .tokens import MESSAGE_OVERHEAD_TOKENS, count_message_tokens, count_prompt_tokens, count_tokens
from .values import ValueSource, instance_for
from .wire import TOKENS_PER_CHUNK, Quirk
from .words import content_words

__all__ = [
    "FAULT_HEADER",
    "MESSAGE_OVERHEAD_TOKENS",
    "MODELS",
    "QUIRKS_HEADER",
    "TOKENS_PER_CHUNK",
    "Emulator",
    "Fault",
    "FaultKind",
    "ModelInfo",
    "Quirk",
    "RecordedRequest",
    "ValueSource",
    "answer_from_context",
    "answer_text",
    "content_words",
    "count_message_tokens",
    "count_prompt_tokens",
    "count_tokens",
    "embed",
    "find_model",
    "instance_for",
    "reply_to",
    "serve",
]
