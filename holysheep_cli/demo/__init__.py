"""``holysheep demo``: a visible tour of the integrations, then a table of what it cost.

Each step uses the public API the way a user would; all calls go through one pair of core
clients whose hooks feed the closing table, next to the frameworks' own cost callbacks.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from importlib import resources
from typing import Any

from rich import box
from rich.console import Console
from rich.rule import Rule
from rich.table import Column, Table

from holysheep_core.accounting import TokenUsage, quantile
from holysheep_core.client import AsyncHolySheepClient, HolySheepClient
from holysheep_core.config import ClientConfig
from holysheep_core.hooks import RetryScheduled, UsageRecorded
from holysheep_core.policy.retry import RetryPolicy
from holysheep_core.pricing import ModelPrice, PriceTable

EMBEDDING_MODEL = "text-embedding-3-small"
NUMERIC_COLUMNS = ("calls", "in tok", "out tok", "USD", "p50 ms", "p99 ms")

__all__ = ["run_demo"]


class _Tally:
    """What the core's hooks saw: latency by model and retries."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.retries = 0

    def on_usage(self, event: UsageRecorded) -> None:
        self.latency[event.model].append(event.latency)

    def on_retry(self, event: RetryScheduled) -> None:
        self.retries += 1
        self.console.print(
            f"  [yellow]↻ {event.status_code or event.error_type} on attempt {event.attempt}"
            f" ({event.message}); retrying in {event.wait_for:.2f}s[/yellow]"
        )


def _documents() -> list[tuple[str, str]]:
    folder = resources.files(__package__) / "documents"
    return sorted((f.name, f.read_text()) for f in folder.iterdir() if f.name.endswith(".md"))


def _step(console: Console, title: str) -> None:
    console.print()
    console.print(Rule(f"[bold]{title}"))


def _langchain_steps(
    console: Console, clients: dict[str, Any], model: str, second_model: str
) -> None:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.tools import tool
    from pydantic import BaseModel, Field

    from langchain_holysheep import ChatHolySheep

    llm = ChatHolySheep(model=model, **clients)
    _step(console, f"LangChain · LCEL chain streamed ({model})")
    chain = (
        ChatPromptTemplate.from_messages(
            [("system", "You are a concise travel guide."), ("user", "{question}")]
        )
        | llm
        | StrOutputParser()
    )
    for piece in chain.stream({"question": "What should I see in Lisbon in one day?"}):
        console.print(piece, end="", markup=False, highlight=False)
    console.print()

    _step(console, f"LangChain · tool call ({model})")

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        return f"18°C and sunny in {city}"

    with_tools = llm.bind_tools([get_weather])
    question = "What is the weather in Lisbon today?"
    ai = with_tools.invoke(question)
    for call in ai.tool_calls:
        console.print(f"  model called [cyan]{call['name']}[/cyan]({call['args']})")
    messages: list[Any] = [("user", question), ai]
    messages += [get_weather.invoke(call) for call in ai.tool_calls]
    console.print(f"  answer: {with_tools.invoke(messages).content}")

    _step(console, f"LangChain · structured output ({second_model})")

    class TripPlan(BaseModel):
        """A short trip."""

        city: str = Field(description="Where to go")
        days: int = Field(description="How many days")
        budget_usd: float = Field(description="Budget in US dollars")

    planner = ChatHolySheep(model=second_model, **clients).with_structured_output(TripPlan)
    plan = planner.invoke("Plan a trip to Kyoto for 4 days with 1500 USD.")
    console.print(f"  {plan!r}")


def _llama_index_steps(
    console: Console, clients: dict[str, Any], model: str, second_model: str
) -> Any:
    from llama_index.core import Document, VectorStoreIndex, get_response_synthesizer
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.tools import FunctionTool

    from llama_index_holysheep import HolySheep, HolySheepCostHandler, HolySheepEmbedding

    handler = HolySheepCostHandler()
    callbacks = CallbackManager([handler])
    li_clients = {"client": clients["client"], "async_client": clients["async_client"]}

    _step(console, f"LlamaIndex · index over bundled documents, streamed query ({second_model})")
    docs = [Document(text=text, metadata={"file": name}) for name, text in _documents()]
    embed = HolySheepEmbedding(model_name=EMBEDDING_MODEL, callback_manager=callbacks, **li_clients)
    index = VectorStoreIndex.from_documents(docs, embed_model=embed, callback_manager=callbacks)
    llm = HolySheep(model=second_model, max_tokens=60, callback_manager=callbacks, **li_clients)
    # Handlers on the LLM alone miss a query engine's calls: its synthesizer takes the
    # callback manager it is given (else the global Settings one), so pass it explicitly.
    engine = RetrieverQueryEngine(
        retriever=index.as_retriever(similarity_top_k=2),
        response_synthesizer=get_response_synthesizer(
            llm=llm, streaming=True, callback_manager=callbacks
        ),
        callback_manager=callbacks,
    )
    response = engine.query("How are credits priced per million tokens?")
    for piece in response.response_gen:
        console.print(piece, end="", markup=False, highlight=False)
    console.print()
    sources = ", ".join(n.node.metadata.get("file", "?") for n in response.source_nodes)
    console.print(f"  [dim]sources: {sources}[/dim]")

    _step(console, f"LlamaIndex · agent step with a tool ({model})")

    def convert_currency(amount: float, rate: float) -> float:
        """Convert an amount of money with an exchange rate."""
        return round(amount * rate, 2)

    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(convert_currency)],
        llm=HolySheep(model=model, callback_manager=callbacks, **li_clients),
        system_prompt="You convert money with the tool you have.",
    )

    async def one_step() -> Any:  # the workflow must start inside a running loop
        return await agent.run(user_msg="Convert 120 money at the exchange rate 7.3")

    result = asyncio.run(one_step())
    for call in result.tool_calls:
        console.print(
            f"  agent called [cyan]{call.tool_name}[/cyan]({call.tool_kwargs}) → "
            f"{call.tool_output.content}"
        )
    console.print(f"  answer: {result.response.content}")
    return handler


def _ride_out_429(console: Console, clients: dict[str, Any], model: str, emulator: Any) -> None:
    from langchain_holysheep import ChatHolySheep

    _step(console, "Resilience · one 429 with Retry-After, ridden out")
    if emulator is None:
        console.print("  [dim]skipped: faults are injected only on the emulator[/dim]")
        return
    from holysheep_core.emulator import Fault

    emulator.inject(Fault.status(429, retry_after=0.5), times=1)
    answer = ChatHolySheep(model=model, **clients).invoke("Are you there?")
    console.print(f"  answer after the retry: {answer.content}")


def _table(console: Console, tally: _Tally, reports: list[Any], clients: list[Any]) -> None:
    usage: dict[str, TokenUsage] = defaultdict(TokenUsage)
    for report in reports:
        for m, u in report.by_model.items():
            usage[m] = usage[m] + u
    _step(console, "What it cost (from the LangChain and LlamaIndex callbacks)")
    # Compact, so the table fits an 80-column terminal (and CI logs) without truncation.
    table = Table(
        Column("model", no_wrap=True),
        *(Column(h, justify="right", no_wrap=True) for h in NUMERIC_COLUMNS),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    total = TokenUsage()
    for m in sorted(usage):
        u = usage[m]
        total = total + u
        lat = tally.latency.get(m, [])
        p50, p99 = quantile(lat, 0.5), quantile(lat, 0.99)
        table.add_row(
            m,
            str(u.requests),
            f"{u.input_tokens:,}",
            f"{u.output_tokens:,}",
            "unknown" if u.cost_usd is None else f"{u.cost_usd:.6f}",
            "-" if p50 is None else f"{p50 * 1000:.1f}",
            "-" if p99 is None else f"{p99 * 1000:.1f}",
        )
    table.add_section()
    table.add_row(
        "total",
        str(total.requests),
        f"{total.input_tokens:,}",
        f"{total.output_tokens:,}",
        "unknown" if total.cost_usd is None else f"{total.cost_usd:.6f}",
        "",
        "",
    )
    console.print(table)
    stats = [c.stats() for c in clients]
    ledger = sum((s.usage for s in stats), TokenUsage())
    console.print(
        f"core client ledger: {sum(s.requests for s in stats)} requests · "
        f"${ledger.cost_usd or 0:.6f} · {tally.retries} retried · "
        f"{sum(sum(s.errors.values()) for s in stats)} failed"
    )


def run_demo(
    console: Console,
    *,
    base_url: str,
    api_key: str,
    emulated: bool,
    model: str = "deepseek-v3.2",
    second_model: str = "gpt-4.1",
    emulator: Any = None,
) -> None:
    """Run every step against ``base_url`` and print the cost table."""
    where = "the embedded emulator" if emulated else "the live API"
    console.print(f"[bold]HolySheep demo[/bold] on {where} ({base_url})")
    tally = _Tally(console)
    config = ClientConfig.resolve(
        api_key=api_key,
        base_url=base_url,
        # The provider's guide prices chat models only; the demo's embedding model is priced
        # at its public list price so the table has no unknown row.
        prices=PriceTable().with_prices({EMBEDDING_MODEL: ModelPrice.of("0.02", "0")}),
        retry=RetryPolicy(max_retries=3, initial_delay=0.25),
        on_retry=(tally.on_retry,),
        on_usage=(tally.on_usage,),
    )
    from langchain_holysheep import get_holysheep_callback

    aclient = AsyncHolySheepClient(config)
    try:
        with HolySheepClient(config) as client, get_holysheep_callback() as lc:
            clients = {"client": client, "async_client": aclient}
            _langchain_steps(console, clients, model, second_model)
            li = _llama_index_steps(console, clients, model, second_model)
            _ride_out_429(console, clients, model, emulator)
            _table(console, tally, [lc, li], [client, aclient])
    finally:
        asyncio.run(aclient.aclose())
