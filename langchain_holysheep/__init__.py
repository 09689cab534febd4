"""LangChain integration of HolySheep AI: chat model, embeddings and a cost callback."""

from .callbacks import HolySheepCallbackHandler, get_holysheep_callback
from .chat_models import ChatHolySheep
from .embeddings import HolySheepEmbeddings

__all__ = [
    "ChatHolySheep",
    "HolySheepCallbackHandler",
    "HolySheepEmbeddings",
    "get_holysheep_callback",
]
