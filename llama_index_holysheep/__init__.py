"""HolySheep AI for LlamaIndex: the ``HolySheep`` LLM, ``HolySheepEmbedding`` and two
handlers that report tokens and USD by model, all over the shared ``holysheep_core`` client."""

from .embeddings import DEFAULT_EMBEDDING_MODEL, HolySheepEmbedding
from .handlers import HolySheepCostHandler, HolySheepUsageEventHandler
from .llm import DEFAULT_CONTEXT_WINDOW, DEFAULT_MODEL, DEFAULT_NUM_OUTPUT, HolySheep
from .usage import HolySheepEmbeddingUsageEvent

__all__ = [
    "DEFAULT_CONTEXT_WINDOW",
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_MODEL",
    "DEFAULT_NUM_OUTPUT",
    "HolySheep",
    "HolySheepCostHandler",
    "HolySheepEmbedding",
    "HolySheepEmbeddingUsageEvent",
    "HolySheepUsageEventHandler",
]
