"""The ``holysheep`` command: ``demo``, ``chat``, ``models`` and ``emulator``.

Every command that talks to the API uses ``HOLYSHEEP_API_KEY`` / ``HOLYSHEEP_BASE_URL``;
``--emulator`` (the default for ``demo`` when no key is set) starts the embedded emulator
instead, so nothing leaves the machine and nothing is spent.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console

from holysheep_core.config import DEFAULT_BASE_URL, ENV_BASE_URL, ENV_KEY
from holysheep_core.errors import HolySheepError

from . import DEMO_EXTRA, missing_extra

app = typer.Typer(
    help="HolySheep AI from the command line: demo, chat, models, and a local emulator.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

EMULATOR_KEY = "hs-emulator-local"

UseEmulator = Annotated[
    bool | None,
    typer.Option(
        "--emulator/--live",
        help=f"Use the embedded emulator (default: only when {ENV_KEY} is unset) or the live API.",
    ),
]


@contextlib.contextmanager
def endpoint(use_emulator: bool | None) -> Iterator[tuple[str, str, Any]]:
    """(base_url, api_key, emulator or None) for the chosen target; the emulator lives as
    long as the block."""
    key = os.environ.get(ENV_KEY)
    if use_emulator is None:
        use_emulator = not key
    if not use_emulator:
        if not key:
            raise typer.BadParameter(f"--live needs {ENV_KEY} to be set")
        yield os.environ.get(ENV_BASE_URL, DEFAULT_BASE_URL), key, None
        return
    from holysheep_core.emulator import Emulator

    emu = Emulator(api_key=EMULATOR_KEY, keep_requests=0)
    url = emu.start()
    try:
        yield url, EMULATOR_KEY, emu
    finally:
        emu.stop()


@app.command()
def demo(
    use_emulator: UseEmulator = None,
    model: Annotated[str, typer.Option(help="Main chat model.")] = "deepseek-v3.2",
    second_model: Annotated[
        str, typer.Option(help="Second model, to show per-model costs.")
    ] = "gpt-4.1",
) -> None:
    """Run the tour: LangChain and LlamaIndex over HolySheep, a ridden-out 429, a cost table."""
    message = missing_extra(DEMO_EXTRA)
    if message is not None:
        print(message, file=sys.stderr)
        raise typer.Exit(1)
    from .demo import run_demo

    with endpoint(use_emulator) as (url, key, emu):
        run_demo(
            console,
            base_url=url,
            api_key=key,
            emulated=emu is not None,
            model=model,
            second_model=second_model,
            emulator=emu,
        )


@app.command()
def chat(
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[str, typer.Option("--model", "-m")] = "deepseek-v3.2",
    system: Annotated[str | None, typer.Option(help="A system message.")] = None,
    use_emulator: UseEmulator = None,
) -> None:
    """Ask one question and stream the answer, then print tokens and cost."""
    from holysheep_core.client import HolySheepClient

    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    with (
        endpoint(use_emulator) as (url, key, _),
        HolySheepClient(api_key=key, base_url=url) as client,
    ):
        usage_line = ""
        with client.stream_chat_completion(model=model, messages=messages) as stream:
            for chunk in stream:
                for choice in chunk.choices:
                    if choice.delta.content:
                        console.print(choice.delta.content, end="", markup=False, highlight=False)
                if chunk.usage is not None:
                    cost = chunk.cost_usd
                    usage_line = (
                        f"{chunk.usage.prompt_tokens} in / {chunk.usage.completion_tokens} out"
                        f" tokens, cost {'unknown' if cost is None else f'${cost:.6f}'}"
                    )
        console.print()
        if usage_line:
            console.print(f"[dim]{model}: {usage_line}[/dim]")


@app.command()
def models(use_emulator: UseEmulator = None) -> None:
    """List the models the API serves, with our prices and context windows."""
    from rich.table import Table

    from holysheep_core.client import HolySheepClient

    with (
        endpoint(use_emulator) as (url, key, _),
        HolySheepClient(api_key=key, base_url=url) as client,
    ):
        table = Table("model", "owned by", "USD / M in", "USD / M out", "context window")
        for m in client.models():
            price = client.prices.price(m.id)
            profile = client.prices.profile(m.id)
            table.add_row(
                m.id,
                m.owned_by,
                f"{price.input}" if price else "unknown",
                f"{price.output}" if price else "unknown",
                f"{profile.context_window:,}" if profile else "unknown",
            )
        console.print(table)


@app.command()
def emulator(
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    api_key: Annotated[
        str | None, typer.Option(help="The only key accepted (default: any non-empty key).")
    ] = None,
    latency: Annotated[float, typer.Option(help="Seconds before each answer.")] = 0.0,
    chunk_delay: Annotated[float, typer.Option(help="Seconds between stream chunks.")] = 0.0,
) -> None:
    """Serve the OpenAI-compatible emulator until interrupted."""
    from holysheep_core.emulator import serve

    def ready(url: str) -> None:
        console.print(f"HolySheep emulator on {url} (Ctrl-C to stop)")

    try:
        with contextlib.suppress(KeyboardInterrupt):
            serve(
                host,
                port,
                api_key,
                latency=latency,
                chunk_delay=chunk_delay,
                on_ready=ready,
            )
    except OSError as exc:
        # One line, no traceback: a taken port is a user's everyday mistake.
        print(f"holysheep emulator: {exc.strerror or exc}", file=sys.stderr)
        raise typer.Exit(1) from None


def run() -> None:
    """Run the command line; core errors end it with one line and exit status 1."""
    try:
        app()
    except HolySheepError as exc:
        err_console.print(f"[red]{type(exc).__name__}:[/red] {exc}")
        raise SystemExit(1) from None
