"""``HolySheepEmbeddings``: LangChain embeddings over the core's embeddings call."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import ConfigDict, Field

from holysheep_core.client import EMBEDDING_BATCH
from holysheep_core.types import EmbeddingResponse

from .errors import langchain_errors
from .settings import HolySheepSettings

__all__ = ["HolySheepEmbeddings"]


class HolySheepEmbeddings(HolySheepSettings, Embeddings):
    """Text embeddings from a HolySheep AI embedding model.

    Example:
        ```python
        from langchain_holysheep import HolySheepEmbeddings

        embeddings = HolySheepEmbeddings(model="text-embedding-3-small")
        vectors = embeddings.embed_documents(["first text", "second text"])
        ```

    Args: ``model``, ``dimensions`` (for models that can shorten their vectors),
    ``batch_size`` (texts per request; longer lists go out in several, concurrently on the
    async path), ``model_kwargs``, and the connection settings of ``ChatHolySheep``
    (``api_key``, ``base_url``, ``timeout``, ``max_retries``, ``default_headers``,
    ``client_settings``, ``client=``, ``async_client=``). Through ``client_settings`` the
    core's breaker, rate limits and budget apply here too (a budget needs the embedding
    model's price: ``{"prices": PriceTable().with_prices(...), "budget_usd": 5}``);
    embeddings never fall back to another model, whose vectors would not compare.
    """

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    model: str = Field(alias="model_name")
    dimensions: int | None = None
    batch_size: int = Field(default=EMBEDDING_BATCH, ge=1)
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Other wire parameters, sent as they are."""

    def _params(self) -> dict[str, Any]:
        params = {**self.model_kwargs, "batch_size": self.batch_size}
        if self.dimensions is not None:
            params["dimensions"] = self.dimensions
        return params

    @staticmethod
    def _vectors(response: EmbeddingResponse) -> list[list[float]]:
        return [item.embedding for item in sorted(response.data, key=lambda e: e.index)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order. An empty list costs no request."""
        if not texts:
            return []
        with langchain_errors():
            response = self._sync_client().embeddings(
                model=self.model, input=list(texts), **self._params()
            )
        return self._vectors(response)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with langchain_errors():
            response = await self._async_client().embeddings(
                model=self.model, input=list(texts), **self._params()
            )
        return self._vectors(response)

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]
