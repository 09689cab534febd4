"""``holysheep demo``: a visible tour of the integrations, then a table of what it cost.

Each step uses the public API the way a user would; all calls go through one pair of core
clients whose hooks feed the closing table, next to the frameworks' own cost callbacks.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from importlib import resources
from typing import Any

from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.rule import Rule
from rich.table import Column, Table
from rich.text import Text

from holysheep_core.accounting import TokenUsage, quantile
from holysheep_core.client import AsyncHolySheepClient, HolySheepClient
from holysheep_core.config import ClientConfig
from holysheep_core.hooks import RetryScheduled, UsageRecorded
from holysheep_core.policy.retry import RetryPolicy
from holysheep_core.pricing import ModelPrice, PriceTable

EMBEDDING_MODEL = "text-embedding-3-small"
NUMERIC_COLUMNS = ("calls", "in tok", "out tok", "USD", "p50 ms", "p99 ms")
MAX_WIDTH = 80  # a usual terminal, and CI logs

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
        retry = Text(
            f"↻ {event.status_code or event.error_type} on attempt {event.attempt}"
            f" ({event.message}); retrying in {event.wait_for:.2f}s",
            style="yellow",
        )
        self.console.print(Padding(retry, (0, 0, 0, 2), expand=False))


def _documents() -> list[tuple[str, str]]:
    folder = resources.files(__package__) / "documents"
    return sorted((f.name, f.read_text()) for f in folder.iterdir() if f.name.endswith(".md"))


def _step(console: Console, title: str) -> None:
    console.print()
    console.print(Rule(f"[bold]{title}"))


def _say(console: Console, text: str, label: str = "") -> None:
    """One indented paragraph, wrapped at the terminal's width (continuation lines too)."""
    body = Text(f"{label}: ", style="dim") if label else Text()
    body.append(text)
    console.print(Padding(body, (0, 0, 0, 2), expand=False))


class _StreamedText:
    """Prints streamed text as it arrives, indented and wrapped at word boundaries."""

    def __init__(self, console: Console, indent: int = 2) -> None:
        self.console = console
        self.width = min(console.width, MAX_WIDTH)
        self.indent = indent
        self.column = 0
        self.pending = ""

    def feed(self, piece: str) -> None:
        self.pending += piece
        *words, self.pending = re.split(r"\s+", self.pending)
        for word in words:
            self._word(word)

    def close(self) -> None:
        self._word(self.pending)
        self.pending = ""
        if self.column:
            self.console.print()

    def _word(self, word: str) -> None:
        if not word:
            return
        if self.column and self.column + 1 + len(word) > self.width:
            self.console.print()
            self.column = 0
        prefix = " " if self.column else " " * self.indent
        self.console.print(prefix + word, end="", markup=False, highlight=False)
        self.column += len(prefix) + len(word)


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
    question = "What should I see in Lisbon in one day?"
    _say(console, question, "you")
    out = _StreamedText(console)
    started, first, pieces = time.perf_counter(), None, 0
    for piece in chain.stream({"question": question}):
        first = first if first is not None else time.perf_counter() - started
        pieces += bool(piece)
        out.feed(piece)
    out.close()
    console.print(
        f"  [dim]{pieces} chunks streamed · first after {(first or 0) * 1000:.0f} ms[/dim]"
    )

    _step(console, f"LangChain · tool call ({model})")

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        return f"18°C and sunny in {city}"

    with_tools = llm.bind_tools([get_weather])
    question = "What is the weather in Lisbon today?"
    _say(console, question, "you")
    ai = with_tools.invoke(question)
    for call in ai.tool_calls:
        console.print(f"  model called [cyan]{call['name']}[/cyan]({call['args']})")
    messages: list[Any] = [("user", question), ai]
    messages += [get_weather.invoke(call) for call in ai.tool_calls]
    _say(console, str(with_tools.invoke(messages).content), "answer")

    _step(console, f"LangChain · structured output ({second_model})")

    class TripPlan(BaseModel):
        """A short trip."""

        city: str = Field(description="Where to go")
        days: int = Field(description="How many days")
        budget_usd: float = Field(description="Budget in US dollars")

    planner = ChatHolySheep(model=second_model, **clients).with_structured_output(TripPlan)
    request = "Plan a trip to Kyoto for 4 days with 1500 USD."
    _say(console, request, "you")
    plan = planner.invoke(request)
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
    llm = HolySheep(model=second_model, max_tokens=200, callback_manager=callbacks, **li_clients)
    # Handlers on the LLM alone miss a query engine's calls: its synthesizer takes the
    # callback manager it is given (else the global Settings one), so pass it explicitly.
    engine = RetrieverQueryEngine(
        retriever=index.as_retriever(similarity_top_k=2),
        response_synthesizer=get_response_synthesizer(
            llm=llm, streaming=True, callback_manager=callbacks
        ),
        callback_manager=callbacks,
    )
    question = "How are credits priced per million tokens?"
    _say(console, question, "you")
    response = engine.query(question)
    out = _StreamedText(console)
    for piece in response.response_gen:
        out.feed(piece)
    out.close()
    sources = ", ".join(
        f"{n.node.metadata.get('file', '?')} ({n.score:.2f})" for n in response.source_nodes
    )
    console.print(f"  [dim]retrieved from {len(docs)} documents: {sources}[/dim]")

    _step(console, f"LlamaIndex · agent step with a tool ({model})")

    def convert_currency(amount: float, rate: float) -> float:
        """Convert an amount of money with an exchange rate."""
        return round(amount * rate, 2)

    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(convert_currency)],
        llm=HolySheep(model=model, callback_manager=callbacks, **li_clients),
        system_prompt="You convert money with the tool you have.",
    )

    request = "Convert 120 money at the exchange rate 7.3"
    _say(console, request, "you")

    async def one_step() -> Any:  # the workflow must start inside a running loop
        return await agent.run(user_msg=request)

    result = asyncio.run(one_step())
    for call in result.tool_calls:
        console.print(
            f"  agent called [cyan]{call.tool_name}[/cyan]({call.tool_kwargs}) → "
            f"{call.tool_output.content}"
        )
    _say(console, str(result.response.content), "answer")
    return handler


def _ride_out_429(console: Console, clients: dict[str, Any], model: str, emulator: Any) -> None:
    from langchain_holysheep import ChatHolySheep

    _step(console, "Resilience · one 429 with Retry-After, ridden out")
    if emulator is None:
        console.print("  [dim]skipped: faults are injected only on the emulator[/dim]")
        return
    from holysheep_core.emulator import Fault

    emulator.inject(Fault.status(429, retry_after=0.5), times=1)
    _say(console, "the next request gets 429 with Retry-After: 0.5", "emulator")
    answer = ChatHolySheep(model=model, **clients).invoke("Are you there?")
    _say(console, str(answer.content), "answer after the retry")


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
