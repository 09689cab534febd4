"""Pydantic models of the OpenAI-compatible wire format (DESIGN.md §3).

Response models accept unknown fields (servers add them) and are strict where a missing
field would crash later: a completion needs at least one choice, a chunk needs its choices
list. Request messages are validated before any network call.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatMessage",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChunkChoice",
    "CompletionTokensDetails",
    "Embedding",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "FunctionCall",
    "Model",
    "ModelList",
    "PromptTokensDetails",
    "ToolCall",
    "Usage",
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class FunctionCall(_Wire):
    name: str
    arguments: str = ""
    """The arguments as a JSON string, exactly as the model produced them."""


class ToolCall(_Wire):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Wire):
    """The assistant message of one choice."""

    role: str = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None
    """Thinking text of reasoning models (DeepSeek and others); must be sent back on the
    assistant turn of a tool loop for thinking mode to continue."""
    refusal: str | None = None


class Choice(_Wire):
    index: int = 0
    message: ChatMessage
    finish_reason: str | None = None
    logprobs: Any = None


_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


class PromptTokensDetails(_Wire):
    cached_tokens: int = 0
    """Prompt tokens served from the provider's cache (billed at the cached-input price)."""


class CompletionTokensDetails(_Wire):
    reasoning_tokens: int = 0
    """Completion tokens spent thinking; already included in ``completion_tokens``."""


class Usage(_Wire):
    """Token counts as the server reports them for one call.

    A count the server sent as ``null`` reads as 0 and is named in ``unreported`` (a
    missing ``total_tokens`` is the sum of the others): the call's cost is then unknown,
    not the cost of what was reported.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None
    unreported: tuple[str, ...] = Field(default=(), exclude=True, repr=False)
    """Counts the server sent as null (not part of the wire format)."""

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        if isinstance(data, dict) and (
            data.get("prompt_tokens", 0) is None
            or data.get("completion_tokens", 0) is None
            or data.get("total_tokens", 0) is None
        ):
            data = dict(data)
            missing = tuple(k for k in _COUNTS if k in data and data[k] is None)
            for key in missing:
                data[key] = 0
            if "total_tokens" in missing:
                data["total_tokens"] = data.get("prompt_tokens", 0) + data.get(
                    "completion_tokens", 0
                )
            data["unreported"] = missing
        return data

    @property
    def cached_tokens(self) -> int:
        d = self.prompt_tokens_details
        return d.cached_tokens if d is not None and d.cached_tokens else 0

    @property
    def reasoning_tokens(self) -> int:
        d = self.completion_tokens_details
        return d.reasoning_tokens if d is not None and d.reasoning_tokens else 0


class _Costed(_Wire):
    # What the client fills in after a call: declared private attributes (copies, pickles
    # and == carry them; never dumped). Declared without defaults, so pydantic builds no
    # per-instance initialiser (that cost more than validating a stream chunk): the
    # properties below supply the defaults.
    _cost_usd: Decimal | None = PrivateAttr()
    _attempts: int = PrivateAttr()
    _request_id: str | None = PrivateAttr()
    _served_model: str | None = PrivateAttr()

    def _fact(self, name: str, default: Any) -> Any:
        private = self.__pydantic_private__
        return default if private is None else private.get(name, default)

    @property
    def cost_usd(self) -> Decimal | None:
        """USD cost of this call from our price table; None when the model's price is unknown."""
        return self._fact("_cost_usd", None)

    @property
    def attempts(self) -> int:
        """How many HTTP attempts the call took (1 = no retry)."""
        return self._fact("_attempts", 1)

    @property
    def request_id(self) -> str | None:
        """The server's ``x-request-id`` for the successful attempt, when it sent one."""
        return self._fact("_request_id", None)

    @property
    def served_model(self) -> str | None:
        """The model we asked that answered: the requested one, or the fallback that took
        over. ``model`` is the server's own name for it, which may differ."""
        return self._fact("_served_model", None)


class ChatCompletion(_Costed):
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: Annotated[list[Choice], Field(min_length=1)]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class FunctionDelta(_Wire):
    name: str | None = None
    arguments: str | None = None


class ChoiceDeltaToolCall(_Wire):
    index: int | None = None
    """Position of the call within the message; some compatible servers omit it (the
    client fills it in before you see the chunk)."""
    id: str | None = None
    type: str | None = None
    function: FunctionDelta | None = None


class ChoiceDelta(_Wire):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None
    refusal: str | None = None


class ChunkChoice(_Wire):
    index: int = 0
    delta: ChoiceDelta = Field(default_factory=ChoiceDelta)
    finish_reason: str | None = None
    logprobs: Any = None


class ChatCompletionChunk(_Costed):
    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class Embedding(_Wire):
    object: str = "embedding"
    index: int = 0
    embedding: list[float]


class EmbeddingUsage(_Wire):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingResponse(_Costed):
    object: str = "list"
    data: list[Embedding]
    model: str = ""
    usage: EmbeddingUsage | None = None


class Model(_Wire):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = ""


class ModelList(_Wire):
    object: str = "list"
    data: list[Model]
