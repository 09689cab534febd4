"""The models the emulator serves, with their limits."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODELS", "SMALL_CONTEXT_SUFFIX", "ModelInfo", "find_model"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A served model: ``context_window`` and ``max_output_tokens`` are in tokens."""

    id: str
    owned_by: str
    created: int
    context_window: int
    max_output_tokens: int

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
        }


MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("deepseek-v3.2", "deepseek", 1_759_190_400, 128_000, 8_192),
    ModelInfo("gpt-4.1", "openai", 1_744_316_542, 1_047_576, 32_768),
    ModelInfo("claude-sonnet-4.5", "anthropic", 1_759_104_000, 200_000, 64_000),
    ModelInfo("gemini-2.5-flash", "google", 1_750_118_400, 1_048_576, 65_536),
)
"""The models ``GET /v1/models`` lists."""

SMALL_CONTEXT_SUFFIX = "-small-context"
_SMALL_CONTEXT = 1_000
_REASONER_WORDS = ("reasoner", "thinking")
_REASONER_CONTEXT, _REASONER_MAX_OUTPUT = 128_000, 65_536
_BY_ID = {model.id: model for model in MODELS}


def find_model(model_id: str) -> ModelInfo | None:
    """The served model with this id, or None (the API answers 404).

    Besides ``MODELS``: any id ending in ``-small-context`` (a 1000-token window, so tests
    can overflow it cheaply) and any id containing ``reasoner`` or ``thinking`` (128K window,
    64K output) are served, owned by ``holysheep``; they are not listed.
    """
    if model_id in _BY_ID:
        return _BY_ID[model_id]
    if model_id.endswith(SMALL_CONTEXT_SUFFIX) and len(model_id) > len(SMALL_CONTEXT_SUFFIX):
        return ModelInfo(model_id, "holysheep", MODELS[0].created, _SMALL_CONTEXT, _SMALL_CONTEXT)
    if any(word in model_id for word in _REASONER_WORDS):
        return ModelInfo(
            model_id, "holysheep", MODELS[0].created, _REASONER_CONTEXT, _REASONER_MAX_OUTPUT
        )
    return None
