"""The `holysheep` command, as a user runs it: demo, chat and models on the emulator."""

from __future__ import annotations

import ast
import os
import re
import signal
import socket
import subprocess
import sys
from decimal import Decimal

import httpx
import pytest
from typer.testing import CliRunner

from holysheep_cli.app import app
from holysheep_core.config import ENV_BASE_URL, ENV_KEY
from holysheep_core.emulator import reply_to


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # No key: every command falls back to the embedded emulator, as on a fresh machine.
    monkeypatch.delenv(ENV_KEY, raising=False)
    monkeypatch.delenv(ENV_BASE_URL, raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    return CliRunner()


def test_demo_runs_every_step_and_its_table_adds_up(runner: CliRunner) -> None:
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    for step in (
        "LCEL chain streamed",
        "tool call",
        "structured output",
        "LlamaIndex",
        "agent step",
        "429",
    ):
        assert step in out
    assert "model called get_weather({'city': 'Lisbon'})" in out
    assert "TripPlan(city='Kyoto', days=4, budget_usd=1500.0)" in out
    assert "agent called convert_currency" in out
    # The RAG step answers from what it retrieved (the pricing document), not with the prompt.
    rag = " ".join(out[out.index("LlamaIndex · index") : out.index("retrieved from")].split())
    assert "credits are sold at one yuan per dollar of usage" in rag
    assert "Context information" not in out and "You said" not in out
    assert "retrieved from 4 documents: pricing.md" in out
    # The callbacks' total equals what the core client's own ledger booked.
    total = re.search(r"^ total\s+(\d+)\s+[\d,]+\s+[\d,]+\s+([\d.]+)", out, re.M)
    ledger = re.search(r"core client ledger: (\d+) requests · \$([\d.]+) · (\d+) retried", out)
    assert total and ledger, out
    assert total.group(1) == ledger.group(1)
    assert Decimal(total.group(2)) == Decimal(ledger.group(2)) > 0
    assert ledger.group(3) == "1"  # the injected 429, ridden out
    assert all(len(line) <= 80 for line in out.splitlines())  # fits a terminal and CI logs


def test_chat_streams_the_answer_then_tokens_and_cost(runner: CliRunner) -> None:
    result = runner.invoke(app, ["chat", "Tell me about Lisbon", "-m", "gpt-4.1"])
    assert result.exit_code == 0, result.output
    assert reply_to("Tell me about Lisbon") in result.output
    assert re.search(r"gpt-4\.1: \d+ in / \d+ out tokens, cost \$0\.\d{6}", result.output)


def test_models_lists_prices_and_windows(runner: CliRunner) -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert re.search(r"deepseek-v3\.2\s.*0\.42\s.*128,000", result.output)


def test_live_without_a_key_is_a_clear_error(runner: CliRunner) -> None:
    result = runner.invoke(app, ["models", "--live"])
    assert result.exit_code != 0
    assert ENV_KEY in result.output


def run_cli(*args: str, code: str = "") -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, in a fresh interpreter (``code`` runs first)."""
    script = f"{code}\nimport sys\nsys.argv = ['holysheep', *{list(args)!r}]\n"
    script += "from holysheep_cli import main\nmain()"
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )


def test_the_emulator_on_a_taken_port_says_so_in_one_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli("emulator", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"holysheep emulator: cannot listen on 127.0.0.1:{port}: the port is already in use "
        "(choose another, or 0 for a free one)"
    ]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "blocked", "extra"),
    [
        (["models"], "typer", "cli"),
        (["emulator"], "rich", "cli"),
        (["demo"], "llama_index", "demo"),
        (["demo"], "langchain_core", "demo"),
    ],
)
def test_a_missing_extra_is_named_in_one_line(args: list[str], blocked: str, extra: str) -> None:
    # None in sys.modules makes the import fail, as if the package were not installed.
    result = run_cli(*args, code=f"import sys; sys.modules[{blocked!r}] = None")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert blocked in line and f"pip install 'holysheep-integrations[{extra}]'" in line
    assert "Traceback" not in result.stderr


def test_the_core_imports_neither_the_command_line_nor_the_adapters() -> None:
    code = (
        "import sys, holysheep_core, holysheep_core.emulator, holysheep_core.testing\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    loaded = set(ast.literal_eval(result.stdout))
    assert "holysheep_core" in loaded
    forbidden = {"typer", "rich", "holysheep_cli", "langchain_holysheep", "llama_index_holysheep"}
    assert loaded & (forbidden | {"langchain_core", "llama_index"}) == set()


def test_the_emulator_command_serves_until_interrupted() -> None:
    script = (
        "import sys; sys.argv = ['holysheep', 'emulator', '--port', '0']\n"
        "from holysheep_cli import main; main()"
    )
    env = {**os.environ, "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        line = process.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+/v1)", line).group(1)
        models = httpx.get(f"{url}/models", headers={"Authorization": "Bearer hs-any"})
        assert models.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
        process.stdout.close()
