"""``HolySheep``: the LlamaIndex LLM for the HolySheep API, a translation over the core client.

Unlike ``OpenAILike`` it is a chat model by default, knows each model's context window and
output limit, and hands LlamaIndex the server's token counts and the call's cost (see
:mod:`.usage`). Requests, retries, pricing and pooling all happen in ``holysheep_core``.
"""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from collections.abc import AsyncGenerator, Generator, Sequence
from contextvars import Context, copy_context
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import BaseModel, Field, field_validator
from llama_index.core.constants import DEFAULT_TEMPERATURE
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.llm import (
    LLMStructuredPredictEndEvent,
    LLMStructuredPredictStartEvent,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import Model as M
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.types import PydanticProgramMode

from holysheep_core import AsyncHolySheepClient, HolySheepClient, ModelProfile
from holysheep_core.observer import current_parent, framework_run
from holysheep_core.policy.fallback import check_models
from holysheep_core.strict_schema import drop_added_nulls, strict_json_schema

from .clients import ClientSettings
from .handlers import keep_cost_handlers
from .messages import to_wire_messages, tool_selections
from .openai_arguments import from_openai_arguments
from .responses import StreamAssembler, chat_response
from .usage import LLM_CLASS_NAME

if TYPE_CHECKING:
    from llama_index.core.prompts import BasePromptTemplate
    from llama_index.core.tools.types import BaseTool

__all__ = ["DEFAULT_CONTEXT_WINDOW", "DEFAULT_MODEL", "DEFAULT_NUM_OUTPUT", "HolySheep"]

dispatcher = get_dispatcher(__name__)

DEFAULT_MODEL = "deepseek-v3.2"
DEFAULT_CONTEXT_WINDOW = 128_000
"""Context window assumed for a model the price table has no profile for (with a warning):
the smallest window of the known chat models, so a prompt sized for it fits any of them."""
DEFAULT_NUM_OUTPUT = 4_096
"""Output tokens reserved for a model with no profile, when ``max_tokens`` is not set."""


class HolySheep(FunctionCallingLLM, ClientSettings):
    """HolySheep AI chat models in LlamaIndex: chat, completion, streaming, tools, agents.

    Args:
        model: a HolySheep model name (``deepseek-v3.2``, ``gpt-4.1``, ``claude-sonnet-4.5``,
            ``gemini-2.5-flash``, ...), in any case (``DeepSeek-V3.2`` is sent as
            ``deepseek-v3.2``); a dated snapshot (``gpt-4.1-2025-04-14``) gets its model's
            window, limits and price. Any other name is not an error (the server decides
            whether it serves it): unless ``context_window`` is given, it gets
            ``DEFAULT_CONTEXT_WINDOW`` (128K, the smallest window of the known chat models,
            so a prompt sized for it fits) and a warning naming the closest known model;
            its cost stays unknown (None, never $0) until priced through
            ``client_settings={"prices": PriceTable().with_prices(...)}``.
        api_key: the API key; else ``HOLYSHEEP_API_KEY``. Kept secret: it never appears in
            ``to_dict()``, ``to_json()``, ``repr`` or callback payloads.
        api_base: the API's base URL; else ``HOLYSHEEP_BASE_URL``, else the public endpoint.
        temperature, max_tokens: sampling settings sent with every call (None: not sent).
        timeout: seconds a read may take (None: the client's default).
        max_retries: retries after a failed attempt (None: the client's default).
        context_window: overrides the model's window, e.g. for a model the table lacks.
        additional_kwargs: other request parameters sent with every call (``top_p``,
            ``seed``, ``reasoning_effort``, ...).
        strict: mark tool schemas and ``json_schema`` response formats ``strict`` (the
            model must match them exactly); they go out in the form OpenAI's strict mode
            accepts (objects closed with ``additionalProperties: false``, every property
            required; for structured output the optional ones nullable, and a null
            answered for one is dropped so the field gets its default).
        structured_output: how ``structured_predict`` asks for JSON: ``"function_calling"``
            (a forced tool call) or ``"json_schema"`` (``response_format``).
        fallback_models: models to try in order when ``model`` fails (open circuit, retries
            spent on a 5xx, 429, timeout or connection error, a context-length error); the
            response's ``raw["model"]``, its cost and the cost handlers then name the model
            that served. A call's ``fallback_models=`` wins (``[]`` turns it off). None: the
            client's (none by default).
        client_settings: further ``ClientConfig`` fields for the shared client: ``breaker``
            (``BreakerPolicy``), ``rate_limits`` (``RateLimits``), ``budget_usd`` (a USD cap,
            or a ``Budget`` shared with others; a call it cannot cover raises
            ``BudgetExceededError`` before anything is sent), ``prices``, ``retry``, hooks
            (``on_usage``, ``on_retry``, ``on_fallback``, ``on_breaker_change``), ... Objects
            with equal settings share one client, and so one breaker, limiter and cap.
        default_headers: headers sent with every request.
        is_function_calling_model: overrides what the profile says (``False`` for a model
            you know takes no tools).
        OpenAILike's arguments: ``is_chat_model=True``, ``reuse_client`` (clients are
            always shared), ``should_use_structured_outputs=True`` (``structured_output=
            "json_schema"``), ``logprobs``, ``top_logprobs`` and ``reasoning_effort`` (sent
            via ``additional_kwargs``) are taken; ``api_version``, ``http_client``,
            ``tokenizer``, ``openai_client``, ... raise ``ConfigurationError`` saying what to
            use, as does any unknown argument (LlamaIndex would ignore it silently).
        client, async_client: core clients to use instead of the process's shared ones
            (their settings then replace ``api_key``, ``api_base``, ``timeout`` and
            ``max_retries``; ``client_settings`` must then be left out).

    Raises:
        ConfigurationError: no API key, or a malformed one, or an unknown
            ``client_settings`` field, before any request.

    Example:
        ```python
        from llama_index_holysheep import HolySheep

        llm = HolySheep(model="deepseek-v3.2")
        print(llm.complete("Say hi").text)
        ```
    """

    model: str = Field(default=DEFAULT_MODEL, description="The HolySheep model to use.")
    temperature: float | None = Field(
        default=DEFAULT_TEMPERATURE, ge=0.0, le=2.0, description="Sampling temperature."
    )
    max_tokens: int | None = Field(
        default=None, gt=0, description="Most tokens to generate (None: the model's limit)."
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Other request parameters sent with every call."
    )
    context_window: int | None = Field(
        default=None, gt=0, description="Overrides the model's context window."
    )
    strict: bool = Field(default=False, description="Send tool schemas as strict.")
    structured_output: Literal["function_calling", "json_schema"] = Field(
        default="function_calling", description="How structured_predict asks for JSON."
    )
    fallback_models: list[str] | None = Field(
        default=None, description="Models to try in order when the model fails."
    )
    is_function_calling_model: bool | None = Field(
        default=None, description="Overrides the profile's say (False: no tool calls)."
    )

    @field_validator("fallback_models")
    @classmethod
    def _fallback_models(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(check_models(value))

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        client: HolySheepClient | None = None,
        async_client: AsyncHolySheepClient | None = None,
        **kwargs: Any,
    ) -> None:
        own = set(type(self).model_fields)
        kwargs = from_openai_arguments(kwargs, own, owner=type(self).__name__)
        super().__init__(model=model, **kwargs)
        self._connect(client, async_client)
        prices = self._clients.config.prices
        self.model = prices.canonical(self.model)  # "DeepSeek-V3.2" -> "deepseek-v3.2"
        if self.context_window is None and self._profile() is None:
            hint = prices.closest(self.model)
            guess = f" (did you mean {hint!r}?)" if hint else ""
            warnings.warn(
                f"HolySheep knows no context window for model {self.model!r}{guess}: "
                f"assuming {DEFAULT_CONTEXT_WINDOW:,} tokens, the smallest of the known chat "
                f"models, and {DEFAULT_NUM_OUTPUT:,} output tokens; its cost is unknown "
                "until you price it. Pass context_window= (and max_tokens=), and "
                'client_settings={"prices": ...} to set them.',
                UserWarning,
                stacklevel=2,
            )

    @classmethod
    def class_name(cls) -> str:
        return LLM_CLASS_NAME

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """The settings as data, ``client_settings`` included (``from_dict`` reads them)."""
        return self._with_settings(super().to_dict(**kwargs))

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "callback_manager":  # resolve_llm and Settings replace it
            value = keep_cost_handlers(self.__dict__.get("callback_manager"), value)
        super().__setattr__(name, value)

    def _profile(self) -> ModelProfile | None:
        return self._clients.config.prices.profile(self.model)

    @property
    def metadata(self) -> LLMMetadata:
        profile = self._profile()
        window = self.context_window or (
            profile.context_window if profile else DEFAULT_CONTEXT_WINDOW
        )
        output = self.max_tokens or (profile.max_output_tokens if profile else DEFAULT_NUM_OUTPUT)
        return LLMMetadata(
            context_window=window,
            # Prompt helpers reserve num_output inside the window: leave the prompt room.
            num_output=min(output, window // 2),
            is_chat_model=True,
            is_function_calling_model=(
                self.is_function_calling_model
                if self.is_function_calling_model is not None
                else (profile.supports_tools if profile else True)
            ),
            model_name=self.model,
            system_role=MessageRole.SYSTEM,
        )

    def _params(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        params = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "fallback_models": self.fallback_models,  # the core's call option, not sent
            **self.additional_kwargs,
            **kwargs,
        }
        return {k: v for k, v in params.items() if v is not None}

    # --- the eight entry points: each fires callbacks and events once ------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat(messages, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._stream_chat(messages, **kwargs)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return chat_to_completion_decorator(self._chat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self._stream_chat)(prompt, **kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._achat(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        return await self._astream_chat(messages, **kwargs)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return await achat_to_completion_decorator(self._achat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await astream_chat_to_completion_decorator(self._astream_chat)(prompt, **kwargs)

    # --- undecorated workers ----------------------------------------------------------

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        wire = to_wire_messages(messages)
        completion = self._clients.sync().chat_completion(
            model=self.model, messages=wire, **self._params(kwargs)
        )
        return chat_response(completion)

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        # Messages are checked now; the request goes out on the first iteration, so a
        # generator nobody iterates holds no connection (and costs nothing).
        wire = to_wire_messages(messages)
        return _responses(
            self._clients.sync(), self.model, wire, self._params(kwargs), *_callers_context()
        )

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        wire = to_wire_messages(messages)
        completion = await self._clients.asynchronous().chat_completion(
            model=self.model, messages=wire, **self._params(kwargs)
        )
        return chat_response(completion)

    async def _astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        wire = to_wire_messages(messages)
        return _aresponses(
            self._clients.asynchronous(),
            self.model,
            wire,
            self._params(kwargs),
            *_callers_context(),
        )

    # --- tools --------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The ``chat`` arguments for a turn with tools; ``tool_choice`` may name a tool."""
        strict = self.strict if strict is None else strict
        specs = []
        for tool in tools:
            spec = tool.metadata.to_openai_tool(skip_length_check=True)
            if strict:
                # Strict mode refuses open objects and optional properties: every argument
                # is required, with its own type (the tool takes it as it is).
                function = spec["function"]
                function["parameters"] = strict_json_schema(
                    function["parameters"], nullable_optionals=False
                )
                function["strict"] = True
            specs.append(spec)
        messages = list(chat_history or [])  # never append to the caller's history
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        prepared: dict[str, Any] = {"messages": messages, **kwargs}
        if specs:
            prepared["tools"] = specs
            prepared["tool_choice"] = _tool_choice(tool_choice, tool_required)
            prepared["parallel_tool_calls"] = allow_parallel_tool_calls
        return prepared

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        message = response.message
        calls = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
        if not allow_parallel_tool_calls and len(calls) > 1:
            message.blocks = [b for b in message.blocks if not isinstance(b, ToolCallBlock)]
            message.blocks.append(calls[0])
            message.additional_kwargs["tool_calls"] = message.additional_kwargs["tool_calls"][:1]
        return response

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls of a response (any response of a stream, too).

        Raises:
            ValueError: there is none and ``error_on_no_tool_call`` is true.
        """
        calls = tool_selections(response.message)
        if not calls and error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but got 0 tool calls.")
        return calls

    # --- structured output through response_format (structured_output="json_schema") ------

    def _uses_json_schema(self) -> bool:
        return (
            self.structured_output == "json_schema"
            and self.pydantic_program_mode == PydanticProgramMode.DEFAULT
        )

    def _schema_call(
        self,
        output_cls: type[BaseModel],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None,
        prompt_args: dict[str, Any],
    ) -> tuple[list[ChatMessage], dict[str, Any]]:
        kwargs = {k: v for k, v in (llm_kwargs or {}).items() if k != "tool_choice"}
        schema = output_cls.model_json_schema()
        if self.strict:
            # Optional fields nullable; _schema_end drops those nulls again.
            schema = strict_json_schema(schema, nullable_optionals=True)
        kwargs["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": re.sub(r"[^a-zA-Z0-9_-]", "_", output_cls.__name__)[:64],
                "schema": schema,
                "strict": self.strict,
            },
        }
        return self._extend_messages(prompt.format_messages(**prompt_args)), kwargs

    def _schema_start(
        self,
        output_cls: type[BaseModel],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None,
        prompt_args: dict[str, Any],
    ) -> tuple[list[ChatMessage], dict[str, Any]]:
        dispatcher.event(
            LLMStructuredPredictStartEvent(
                output_cls=output_cls, template=prompt, template_args=prompt_args
            )
        )
        return self._schema_call(output_cls, prompt, llm_kwargs, prompt_args)

    def _schema_end(self, output_cls: type[M], response: ChatResponse) -> M:
        text = response.message.content or ""
        if self.strict:
            answer = json.loads(text)
            result = output_cls.model_validate(
                drop_added_nulls(answer, output_cls.model_json_schema())
            )
        else:
            result = output_cls.model_validate_json(text)
        dispatcher.event(LLMStructuredPredictEndEvent(output=result))
        return result

    def structured_predict(
        self,
        output_cls: type[M],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> M:
        if not self._uses_json_schema():
            return super().structured_predict(
                output_cls, prompt, llm_kwargs=llm_kwargs, **prompt_args
            )
        messages, kwargs = self._schema_start(output_cls, prompt, llm_kwargs, prompt_args)
        return self._schema_end(output_cls, self.chat(messages, **kwargs))

    async def astructured_predict(
        self,
        output_cls: type[M],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> M:
        if not self._uses_json_schema():
            return await super().astructured_predict(
                output_cls, prompt, llm_kwargs=llm_kwargs, **prompt_args
            )
        messages, kwargs = self._schema_start(output_cls, prompt, llm_kwargs, prompt_args)
        return self._schema_end(output_cls, await self.achat(messages, **kwargs))

    def _structured_stream_call(
        self,
        output_cls: type[M],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Generator[Any, None, None]:
        if not self._uses_json_schema():
            return super()._structured_stream_call(output_cls, prompt, llm_kwargs, **prompt_args)
        from llama_index.core.program.streaming_utils import process_streaming_content_incremental

        messages, kwargs = self._schema_call(output_cls, prompt, llm_kwargs, prompt_args)

        def gen() -> Generator[Any, None, None]:
            current = None
            for response in self.stream_chat(messages, **kwargs):
                current = process_streaming_content_incremental(response, output_cls, current)
                yield current

        return gen()

    async def _structured_astream_call(
        self,
        output_cls: type[M],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> AsyncGenerator[Any, None]:
        if not self._uses_json_schema():
            return await super()._structured_astream_call(
                output_cls, prompt, llm_kwargs, **prompt_args
            )
        from llama_index.core.program.streaming_utils import process_streaming_content_incremental

        messages, kwargs = self._schema_call(output_cls, prompt, llm_kwargs, prompt_args)

        async def gen() -> AsyncGenerator[Any, None]:
            current = None
            async for response in await self.astream_chat(messages, **kwargs):
                current = process_streaming_content_incremental(response, output_cls, current)
                yield current

        return gen()


def _tool_choice(choice: str | dict[str, Any] | None, required: bool) -> str | dict[str, Any]:
    if choice is None:
        return "required" if required else "auto"
    if isinstance(choice, str) and choice not in ("auto", "none", "required"):
        return {"type": "function", "function": {"name": choice}}
    return choice


def _callers_context() -> tuple[Context, Any]:
    """What a lazily sent stream carries from its stream_chat() call to its first
    iteration: the context (budget scopes) and the span it nests under when traced."""
    return copy_context(), current_parent()


def _responses(
    client: HolySheepClient,
    model: str,
    wire: list[dict[str, Any]],
    params: dict[str, Any],
    context: Context,
    parent: Any,
) -> ChatResponseGen:
    # Sent in the context of the stream_chat() call, not of the first next(): a
    # budget_scope around the call applies, and a trace nests under the call's span.
    def send() -> Any:
        with framework_run(parent):
            return client.stream_chat_completion(model=model, messages=wire, **params)

    stream = context.run(send)
    # Leaving early closes the stream (and its connection) through the with-block.
    with stream:
        assembler = StreamAssembler()
        for chunk in stream:
            yield from assembler.add(chunk)
        yield assembler.finish()


async def _aresponses(
    client: AsyncHolySheepClient,
    model: str,
    wire: list[dict[str, Any]],
    params: dict[str, Any],
    context: Context,
    parent: Any,
) -> ChatResponseAsyncGen:
    # As in _responses: the astream_chat() call's context, not the first __anext__()'s.
    async def send() -> Any:
        with framework_run(parent):
            return await client.stream_chat_completion(model=model, messages=wire, **params)

    stream = await asyncio.create_task(send(), context=context)
    async with stream:
        assembler = StreamAssembler()
        async for chunk in stream:
            for response in assembler.add(chunk):
                yield response
        yield assembler.finish()
