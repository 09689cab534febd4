"""The core's model profiles in langchain-core's ``ModelProfile`` shape (``model.profile``)."""

from __future__ import annotations

from langchain_core.language_models import ModelProfile

from holysheep_core import ModelProfile as CoreProfile
from holysheep_core import PriceTable

__all__ = ["model_profile"]


def model_profile(prices: PriceTable, model: str) -> ModelProfile | None:
    """What ``model`` can take and give, from the price table's profiles; None if unknown."""
    core: CoreProfile | None = prices.profile(model)
    if core is None:
        return None
    return ModelProfile(
        max_input_tokens=core.context_window,
        max_output_tokens=core.max_output_tokens,
        text_inputs=True,
        text_outputs=True,
        image_inputs=core.supports_vision,
        image_url_inputs=core.supports_vision,
        tool_calling=core.supports_tools,
        tool_choice=core.supports_tools,
        # The core numbers streamed tool calls even when a server does not.
        tool_call_streaming=core.supports_tools,
        # The server's json_schema response format: what with_structured_output and
        # create_agent(response_format=...) choose by default when it is true.
        structured_output=core.supports_json_schema,
        reasoning_output=core.supports_reasoning,
    )
