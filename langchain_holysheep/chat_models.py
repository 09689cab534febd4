"""``ChatHolySheep``: a LangChain chat model over the HolySheep core client.

A drop-in for ``ChatOpenAI(base_url=...)`` that adds, with no other change: usage on
streams (one chunk, always), the cost of each call in ``response_metadata["cost_usd"]``,
the core's retries and typed errors (mapped onto langchain-core's ``ModelError`` family),
reasoning content kept and sent back, and one shared connection pool per settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput, ModelProfile
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field, field_validator

from holysheep_core.observer import framework_run
from holysheep_core.params import encode_json
from holysheep_core.policy.fallback import check_models
from holysheep_core.policy.ratelimit import estimate_tokens
from holysheep_core.types import ChatCompletion, ChatCompletionChunk

from .errors import langchain_errors
from .messages import (
    MODEL_PROVIDER,
    ai_message,
    call_metadata,
    chunk_message,
    cost_metadata,
    to_wire_messages,
    usage_metadata,
)
from .openai_arguments import from_openai_arguments
from .profiles import model_profile
from .settings import ENV_KEY, HolySheepSettings
from .structured import default_method, structured_output
from .tools import ToolChoice, format_tools, tool_choice_to_wire

__all__ = ["ChatHolySheep"]

DEFAULT_MODEL = "deepseek-v3.2"

# LangChain-level options that must not reach the wire.
_NOT_WIRE = ("stream", "stream_options", "stream_usage", "ls_structured_output_format")


class ChatHolySheep(HolySheepSettings, BaseChatModel):
    """HolySheep AI chat models (``deepseek-v3.2``, ``gpt-4.1``, ``claude-sonnet-4.5``,
    ``gemini-2.5-flash``, ...) for LangChain.

    Example:
        ```python
        from langchain_holysheep import ChatHolySheep

        model = ChatHolySheep(model="deepseek-v3.2", temperature=0)  # key: HOLYSHEEP_API_KEY
        reply = model.invoke("Hello")
        reply.usage_metadata, reply.response_metadata["cost_usd"]
        ```

    Args: ``model`` (alias ``model_name``), ``api_key`` (else ``HOLYSHEEP_API_KEY``),
    ``base_url`` (else ``HOLYSHEEP_BASE_URL``, else the public API), ``temperature``,
    ``max_tokens``, ``timeout``, ``max_retries``, ``stop``, ``top_p``, ``n``, ``seed``,
    ``presence_penalty``, ``frequency_penalty``, ``reasoning_effort``, ``thinking``,
    ``model_kwargs`` and ``extra_body`` (both sent as they are), ``stream_usage``,
    ``default_headers``, ``fallback_models``, ``client_settings``, or an injected core
    ``client=`` / ``async_client=``.

    Resilience: ``fallback_models=["deepseek-v3.2", ...]`` are tried in order when the
    model fails (open circuit, retries spent on a 5xx, 429, timeout or connection error, a
    context-length error); the answer, its ``response_metadata["model_name"]``, its cost and
    the cost callbacks then name the model that served. A per-call ``fallback_models=``
    wins (``[]`` turns it off). ``client_settings`` passes the core's other policies to the
    shared client, e.g. ``{"breaker": BreakerPolicy(...), "rate_limits": RateLimits(...),
    "budget_usd": 5}``: a call the budget cannot cover raises
    ``HolySheepBudgetExceededError`` (a ``ModelError``) before anything is sent.

    ``ChatOpenAI``'s arguments work too: ``openai_api_key``, ``openai_api_base``,
    ``request_timeout=(connect, read)`` (or an ``httpx.Timeout``), ``logprobs`` /
    ``top_logprobs`` (in ``response_metadata["logprobs"]``, as ChatOpenAI puts them),
    ``disabled_params``, ``reasoning={"effort": ...}``; OpenAI-client options HolySheep has
    no use for (``organization``, ``http_client``, ``default_query``,
    ``tiktoken_model_name``, ...) raise ``ConfigurationError`` saying what to use instead
    unless None; any other argument (``service_tier``, ``verbosity``, ...) goes into
    ``model_kwargs`` with a warning, and is sent as it is, as ChatOpenAI does.

    Raises: ``ConfigurationError`` (a ``ValueError``) at construction for a missing or
    malformed key or an unknown ``client_settings`` field; at call time, ``ModelError``
    subclasses that are also the core's errors.
    """

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    model: str = Field(default=DEFAULT_MODEL, alias="model_name")
    """Model name; a per-call ``model=`` overrides it."""
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, alias="max_completion_tokens")
    stop: list[str] | str | None = Field(default=None, alias="stop_sequences")
    top_p: float | None = None
    n: int | None = None
    """Choices per request; streaming follows the first."""
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    reasoning_effort: str | None = None
    """``"low"``, ``"medium"``, ``"high"`` ... for models that take it."""
    thinking: bool | dict[str, Any] | None = None
    """DeepSeek-style thinking mode: True / False, or the wire's ``{"type": ...}`` dict."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Other wire parameters, sent as they are."""
    extra_body: dict[str, Any] | None = None
    """More wire parameters, sent as they are (the openai SDK's name for it)."""
    stream_usage: bool = True
    """Report usage (and cost) on the last streamed chunk."""
    streaming: bool = False
    """Use the streaming API even for ``invoke``."""
    fallback_models: list[str] | None = None
    """Models to try in order when this one fails; None: the client's (none by default)."""

    logprobs: bool | None = None
    """Return the log probabilities of the output tokens, in ``response_metadata["logprobs"]``
    (each streamed chunk's in its own), as ``ChatOpenAI`` does."""
    top_logprobs: int | None = None
    """How many most likely tokens to return at each position (needs ``logprobs=True``)."""
    disabled_params: dict[str, Any] | None = None
    """Wire parameters never to send, as in ``ChatOpenAI``: ``{"parallel_tool_calls": None}``
    drops the parameter whatever its value, ``{"tool_choice": ["required"]}`` only those
    values."""

    def __init__(self, **data: Any) -> None:
        # Translated here, not in a validator: pydantic would wrap a refusal in a
        # ValidationError that prints the input, key included.
        own = {*type(self).model_fields}
        own.update(f.alias for f in type(self).model_fields.values() if f.alias)
        super().__init__(**from_openai_arguments(data, own))
        self.model = self._prices().canonical(self.model)  # "DeepSeek-V3.2" -> "deepseek-v3.2"

    @field_validator("fallback_models")
    @classmethod
    def _fallback_models(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(check_models(value))

    # --- LangChain plumbing -------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "holysheep-chat"

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": ENV_KEY}

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_holysheep", "chat_models"]

    def _resolve_model_profile(self) -> ModelProfile | None:
        return model_profile(self._prices(), self.model)

    @property
    def _default_params(self) -> dict[str, Any]:
        """Wire parameters every call sends (None values left out)."""
        thinking = self.thinking
        if isinstance(thinking, bool):
            thinking = {"type": "enabled" if thinking else "disabled"}
        params = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop or None,
            "top_p": self.top_p,
            "n": self.n,
            "seed": self.seed,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "reasoning_effort": self.reasoning_effort,
            "thinking": thinking,
            "logprobs": self.logprobs,
            "top_logprobs": self.top_logprobs,
            **self.model_kwargs,
            **(self.extra_body or {}),
        }
        return {k: v for k, v in params.items() if v is not None}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model, **self._default_params}

    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return {
            "model": self.model,
            **super()._get_invocation_params(stop=stop),
            **self._default_params,
            **kwargs,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = self._get_invocation_params(stop=stop, **kwargs)
        ls_params = LangSmithParams(
            ls_provider=MODEL_PROVIDER,
            ls_model_name=str(params.get("model") or self.model),
            ls_model_type="chat",
            ls_temperature=params.get("temperature", self.temperature),
        )
        if (max_tokens := params.get("max_tokens", self.max_tokens)) is not None:
            ls_params["ls_max_tokens"] = max_tokens
        if ls_stop := stop or params.get("stop") or self.stop:
            ls_params["ls_stop"] = [ls_stop] if isinstance(ls_stop, str) else ls_stop
        return ls_params

    # --- token counts: an estimate, the provider publishes no tokenizer -------------------

    def get_num_tokens(self, text: str) -> int:
        """An estimate of the tokens in ``text``: one per four bytes of its UTF-8, rounded up
        (:func:`holysheep_core.policy.ratelimit.estimate_tokens`, the rule the client's rate
        limits and budget reserve by). Not the provider's tokenizer, which is not public:
        a little high for English, low for dense scripts. A ``custom_get_token_ids`` wins.
        """
        if self.custom_get_token_ids is not None:
            return super().get_num_tokens(text)
        return estimate_tokens(text.encode())

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """An estimate of the prompt tokens of ``messages`` (and ``tools``), by the rule of
        :meth:`get_num_tokens` applied to the JSON they would be sent as; what
        ``trim_messages(..., token_counter=model)`` counts with. Not the provider's count:
        the usage on each answer is."""
        if self.custom_get_token_ids is not None:
            return super().get_num_tokens_from_messages(messages, tools)
        body: dict[str, Any] = {"messages": to_wire_messages(messages)}
        if tools:
            body["tools"] = format_tools(tools)
        return estimate_tokens(encode_json(body))

    def get_token_ids(self, text: str) -> list[int]:
        """Only with ``custom_get_token_ids``: HolySheep publishes no tokenizer (use
        :meth:`get_num_tokens` for an estimate)."""
        if self.custom_get_token_ids is None:
            raise NotImplementedError(
                "HolySheep models publish no tokenizer: get_num_tokens() gives an estimate; "
                "pass custom_get_token_ids= for token ids"
            )
        return super().get_token_ids(text)

    # --- one call -----------------------------------------------------------------------

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> tuple[str, list[dict[str, Any]], dict[str, Any], bool]:
        """Model, wire messages, wire parameters and whether to report stream usage."""
        params = {**self._default_params, **kwargs}
        model = params.pop("model", None)
        model = self._prices().canonical(model) if model else self.model
        if self.fallback_models is not None:
            params.setdefault("fallback_models", self.fallback_models)  # the core's call option
        if stop is not None:
            params["stop"] = stop or None
        params.update(params.pop("extra_body", None) or {})
        stream_usage = params.get("stream_usage")
        if stream_usage is None:
            stream_usage = (params.get("stream_options") or {}).get("include_usage")
        for name in _NOT_WIRE:
            params.pop(name, None)
        for name, values in (self.disabled_params or {}).items():
            if values is None or params.get(name) in values:
                params.pop(name, None)
        report_usage = self.stream_usage if stream_usage is None else bool(stream_usage)
        return model, to_wire_messages(messages), params, report_usage

    def _chat_result(self, completion: ChatCompletion) -> ChatResult:
        meta = call_metadata(completion, completion.request_id)
        generations = []
        for i, choice in enumerate(completion.choices):
            message = ai_message(choice.message)
            info: dict[str, Any] = {"finish_reason": choice.finish_reason}
            if choice.logprobs is not None:
                info["logprobs"] = choice.logprobs
            message.response_metadata = {**meta, **info}
            # The call's usage and cost belong to the call: reported on the first choice
            # only, so nothing that sums messages counts them n times.
            if completion.cache_hit:  # answered by the core's ResponseCache: no request, $0
                message.response_metadata["cache_hit"] = True
            if i == 0:
                message.response_metadata.update(cost_metadata(completion.cost_usd))
                if completion.usage is not None:
                    message.usage_metadata = usage_metadata(completion.usage)
            generations.append(ChatGeneration(message=message, generation_info=info))
        llm_output = {
            "token_usage": completion.usage.model_dump() if completion.usage else None,
            "model_name": completion.model,
        }
        return ChatResult(generations=generations, llm_output=llm_output)

    def _generation_chunk(
        self, chunk: ChatCompletionChunk, request_id: str | None, report_usage: bool
    ) -> ChatGenerationChunk | None:
        if not chunk.choices:
            # The core delivers usage exactly once, on a last chunk without choices.
            if not report_usage or chunk.usage is None:
                return None
            message = AIMessageChunk(
                content="",
                usage_metadata=usage_metadata(chunk.usage),
                response_metadata={
                    "model_provider": MODEL_PROVIDER,
                    **cost_metadata(chunk.cost_usd),
                    **({"cache_hit": True} if chunk.cache_hit else {}),
                },
                chunk_position="last",
            )
            return ChatGenerationChunk(message=message)
        choice = next((c for c in chunk.choices if c.index == 0), None)
        if choice is None:
            return None  # other choices of an n > 1 stream
        message, finish_reason = chunk_message(choice)
        message.response_metadata["model_provider"] = MODEL_PROVIDER
        info = None
        if choice.logprobs:
            # langchain-core adds generation_info to each streamed chunk's response_metadata
            # (logprobs lists then concatenate when chunks are added), as for ChatOpenAI.
            info = {"logprobs": choice.logprobs}
        if finish_reason is not None:
            # Strings merge by concatenation in LangChain: name the call exactly once.
            info = {**(info or {}), "finish_reason": finish_reason}
            message.response_metadata.update(call_metadata(chunk, request_id))
            message.response_metadata["finish_reason"] = finish_reason
            if chunk.cache_hit and not report_usage:  # else the usage chunk says it
                message.response_metadata["cache_hit"] = True
        return ChatGenerationChunk(message=message, generation_info=info)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        model, wire, params, _ = self._request(messages, stop, kwargs)
        with langchain_errors(), framework_run(run_manager):
            completion = self._sync_client().chat_completion(model=model, messages=wire, **params)
        return self._chat_result(completion)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        model, wire, params, _ = self._request(messages, stop, kwargs)
        with langchain_errors(), framework_run(run_manager):
            completion = await self._async_client().chat_completion(
                model=model, messages=wire, **params
            )
        return self._chat_result(completion)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        model, wire, params, report_usage = self._request(messages, stop, kwargs)
        with langchain_errors():
            with framework_run(run_manager):  # only while the call starts: this is a generator
                stream = self._sync_client().stream_chat_completion(
                    model=model, messages=wire, **params
                )
            # Leaving early (a break, an exception downstream) closes the stream, which
            # releases its connection and records it as abandoned.
            with stream:
                for chunk in stream:
                    generation = self._generation_chunk(chunk, stream.request_id, report_usage)
                    if generation is None:
                        continue
                    if run_manager is not None:
                        run_manager.on_llm_new_token(generation.text, chunk=generation)
                    yield generation

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        model, wire, params, report_usage = self._request(messages, stop, kwargs)
        with langchain_errors():
            with framework_run(run_manager):
                stream = await self._async_client().stream_chat_completion(
                    model=model, messages=wire, **params
                )
            async with stream:
                async for chunk in stream:
                    generation = self._generation_chunk(chunk, stream.request_id, report_usage)
                    if generation is None:
                        continue
                    if run_manager is not None:
                        await run_manager.on_llm_new_token(generation.text, chunk=generation)
                    yield generation

    # --- tools and structured output ----------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[Mapping[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: ToolChoice = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, functions, pydantic models, TypedDicts or schema
        dicts) to this model.

        Args:
            tools: the tools.
            tool_choice: a tool's name (call that tool), ``"auto"``, ``"none"``, ``"any"``
                / ``"required"`` / ``True`` (call some tool), or the wire's dict.
            strict: ask the server to hold tool arguments to the schema exactly.
            parallel_tool_calls: False to allow at most one tool call per turn.
            kwargs: bound as further call arguments.

        Raises:
            ValueError: a ``tool_choice`` that names no bound tool, before any request.
        """
        formatted = format_tools(tools, strict=strict)
        choice = tool_choice_to_wire(tool_choice, [t["function"]["name"] for t in formatted])
        if choice is not None:
            kwargs["tool_choice"] = choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        if formatted:
            kwargs["tools"] = formatted
        return super().bind(**kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["json_schema", "function_calling", "json_mode"] | None = None,
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """A runnable whose output follows ``schema`` (pydantic class, TypedDict, JSON
        schema or function schema dict).

        Args:
            schema: the output schema; optional for ``json_mode``.
            method: ``"json_schema"`` (the server's structured output),
                ``"function_calling"`` (a forced tool call) or ``"json_mode"`` (any JSON
                object; the prompt must ask for JSON). By default, what the model's
                profile says it honours: ``json_schema`` where ``profile["structured_output"]``
                is true (``gpt-4.1``, ``gemini-2.5-flash``), else ``function_calling``
                (``deepseek-v3.2``, ``claude-sonnet-4.5``, models with no profile).
            include_raw: return ``{"raw", "parsed", "parsing_error"}`` instead of raising
                when the answer does not parse.
            strict: ask the server to hold the output to the schema exactly. The schema
                goes out in the form strict mode accepts (every object closed with
                ``additionalProperties: false``, every property required, the optional
                ones nullable); a null the model gives an optional field is dropped
                before parsing, so the field gets its default.

        Returns:
            pydantic instances for a pydantic schema, dicts otherwise.
        """
        if method is None:
            method = default_method(self.profile)
        return structured_output(
            self, schema, method=method, include_raw=include_raw, strict=strict, **kwargs
        )
