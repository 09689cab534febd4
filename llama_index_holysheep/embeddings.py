"""``HolySheepEmbedding``: LlamaIndex embeddings over the core's embeddings call."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation import get_dispatcher

from holysheep_core import AsyncHolySheepClient, EmbeddingResponse, HolySheepClient

from .clients import ClientSettings
from .handlers import HolySheepCostHandler, keep_cost_handlers
from .openai_arguments import from_openai_arguments
from .usage import HolySheepEmbeddingUsageEvent, embedding_usage

__all__ = ["DEFAULT_EMBEDDING_MODEL", "DEFAULT_EMBED_BATCH_SIZE", "HolySheepEmbedding"]

DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
"""Priced by default at its public list price (see ``holysheep_core.pricing``)."""
DEFAULT_EMBED_BATCH_SIZE = 100
"""Texts per request, as ``OpenAIEmbedding`` (LlamaIndex's own default is 10)."""

dispatcher = get_dispatcher(__name__)


class HolySheepEmbedding(BaseEmbedding, ClientSettings):
    """HolySheep AI embeddings for LlamaIndex indexes and retrievers.

    LlamaIndex cuts long lists into ``embed_batch_size`` texts (100 by default, as
    ``OpenAIEmbedding``); each batch is one request through the shared client (pooled,
    retried). The async methods are true async twins.
    Each request's tokens and USD reach ``HolySheepCostHandler`` and
    ``HolySheepUsageEventHandler`` (as a ``HolySheepEmbeddingUsageEvent``).

    Args:
        model_name: the embedding model. The default, ``text-embedding-3-small``, and
            ``text-embedding-3-large`` / ``text-embedding-ada-002`` are priced at their
            public list prices (USD 0.02 / 0.13 / 0.10 per million tokens); override them,
            or price another model, with ``client_settings={"prices":
            PriceTable().with_prices({...})}``. An unpriced model's cost is unknown (None),
            never $0.
        embed_batch_size: texts per request (default 100).
        dimensions: length of the vectors, for models that can shorten them (None: the
            model's own).
        api_key, api_base, timeout, max_retries, client_settings, client, async_client: as
            for :class:`~llama_index_holysheep.HolySheep`; the key never appears in dumps.
            Embeddings never fall back to another model (its vectors would not compare).
        additional_kwargs: other request parameters sent with every call.
        default_headers: headers sent with every request.
        OpenAIEmbedding's arguments: ``model=`` names the model; ``reuse_client`` is taken;
            ``api_version``, ``http_client``, ... raise ``ConfigurationError`` saying what to
            use, as does any unknown argument.

    Raises:
        ConfigurationError: no API key, or a malformed one, before any request.
    """

    model_name: str = Field(default=DEFAULT_EMBEDDING_MODEL, description="The embedding model.")
    embed_batch_size: int = Field(
        default=DEFAULT_EMBED_BATCH_SIZE,
        gt=0,
        le=2048,
        description="Texts per embeddings request (OpenAIEmbedding's default).",
    )
    dimensions: int | None = Field(default=None, gt=0, description="Vector length.")
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Other request parameters sent with every call."
    )

    def __init__(
        self,
        model_name: str | None = None,
        *,
        client: HolySheepClient | None = None,
        async_client: AsyncHolySheepClient | None = None,
        **kwargs: Any,
    ) -> None:
        if model_name is not None:
            kwargs["model_name"] = model_name
        kwargs = from_openai_arguments(
            kwargs, set(type(self).model_fields), owner="HolySheepEmbedding"
        )
        kwargs.setdefault("model_name", DEFAULT_EMBEDDING_MODEL)
        super().__init__(**kwargs)
        self._connect(client, async_client)

    @classmethod
    def class_name(cls) -> str:
        return "holysheep_embedding"

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """The settings as data, ``client_settings`` included (``from_dict`` reads them)."""
        return self._with_settings(super().to_dict(**kwargs))

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "callback_manager":  # resolve_embed_model and Settings replace it
            value = keep_cost_handlers(self.__dict__.get("callback_manager"), value)
        super().__setattr__(name, value)

    def _params(self, texts: list[str]) -> dict[str, Any]:
        return {
            **self.additional_kwargs,
            "model": self.model_name,
            "input": texts,
            "batch_size": self.embed_batch_size,
            "dimensions": self.dimensions,
        }

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._vectors(self._clients.sync().embeddings(**self._params(texts)))

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._vectors(await self._clients.asynchronous().embeddings(**self._params(texts)))

    def _vectors(self, response: EmbeddingResponse) -> list[Embedding]:
        """The vectors in input order, after reporting the request's usage: LlamaIndex's own
        embedding events carry none, and async batches run in tasks of their own, so the
        usage goes out here, once per request, to whoever counts it."""
        model = response.model or self.model_name
        usage = embedding_usage(response)
        dispatcher.event(HolySheepEmbeddingUsageEvent(model=model, usage=usage))
        for handler in self.callback_manager.handlers:
            if isinstance(handler, HolySheepCostHandler):
                handler.add(model, usage)
        return [item.embedding for item in sorted(response.data, key=lambda item: item.index)]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await self._aget_text_embedding(query)
