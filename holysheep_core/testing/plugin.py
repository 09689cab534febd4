"""pytest plugin (entry point ``holysheep``): the ``holysheep_vcr`` marker and its fixtures.

Loaded automatically once the package is installed, it changes nothing for a test that
neither carries the marker nor asks for one of its fixtures: your ``vcr_config``, your
``vcr`` markers and your environment stay as they are. ``-p no:holysheep`` turns it off.

A test marked ``@pytest.mark.holysheep_vcr`` gets, through pytest-recording:

- a ``vcr`` marker with :func:`~holysheep_core.testing.vcr_config` (its keys win over your
  ``vcr_config`` fixture; a ``vcr`` marker of your own on the test function wins over it);
- a ``block_network`` marker: replaying, not even loopback is reachable
  (``holysheep_vcr(block_network=False)`` keeps the network);
- ``HOLYSHEEP_API_KEY`` and ``HOLYSHEEP_BASE_URL`` set for the test from
  ``holysheep_target``: a dummy key when replaying; when recording, your key and the live
  API if ``HOLYSHEEP_API_KEY`` is set, else the bundled emulator.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from ..config import ENV_BASE_URL, ENV_KEY
from .matching import register_matchers
from .preset import vcr_config
from .target import (
    EMULATOR_API_KEY,
    Target,
    emulator_target,
    is_replaying,
    live_target,
    replay_target,
)

MARKER = "holysheep_vcr"

_HINT = (
    "This test made a request its cassette does not hold (vcrpy's 'Matchers failed' above\n"
    "names the first difference, e.g. 'json_body - body.messages[0].content'): the code or\n"
    "its inputs changed since the recording, and an old answer is not replayed for a new\n"
    "question. If the change is intended, re-record this test:\n"
    "    pytest --record-mode=rewrite <this test>\n"
    "against the live API when HOLYSHEEP_API_KEY is set, else against the bundled emulator."
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*extra_cassettes, secrets=(), block_network=True, **vcr_options): record "
        "and replay this test's HolySheep calls with keys filtered out (pytest-recording)",
    )


@pytest.hookimpl(optionalhook=True)
def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    # Only adds the matcher's name; a configuration that does not ask for it is unchanged.
    register_matchers(vcr)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    marked = [item for item in items if item.get_closest_marker(MARKER) is not None]
    if marked and not config.pluginmanager.hasplugin("recording"):
        raise pytest.UsageError(
            f"@pytest.mark.{MARKER} needs pytest-recording: "
            'pip install "holysheep-integrations[testing]"'
        )
    for item in marked:
        marker = item.get_closest_marker(MARKER)
        options = dict(marker.kwargs)
        block = options.pop("block_network", True)
        item.add_marker(pytest.mark.vcr(*marker.args, **vcr_config(**options)))
        if block and item.get_closest_marker("block_network") is None:
            item.add_marker(pytest.mark.block_network)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if (
        call.excinfo is not None
        and item.get_closest_marker(MARKER) is not None
        and _is_unmatched_request(call.excinfo.value)
    ):
        report.sections.append(("holysheep replay", _HINT))
    return report


@pytest.fixture
def holysheep_vcr_config() -> dict[str, Any]:
    """The preset as a dict, to build your own ``vcr_config`` fixture on."""
    return vcr_config()


@pytest.fixture(scope="session")
def _holysheep_emulator_server() -> Iterator[Any]:
    from ..emulator import Emulator

    emulator = Emulator(api_key=EMULATOR_API_KEY)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def holysheep_emulator(_holysheep_emulator_server: Any) -> Any:
    """The bundled emulator (one per session, its state cleared for each test); it accepts
    ``EMULATOR_API_KEY``."""
    _holysheep_emulator_server.reset()
    return _holysheep_emulator_server


@pytest.fixture
def holysheep_target(request: pytest.FixtureRequest) -> Target:
    """Where this test's calls go: the cassette (dummy key) when vcrpy will replay, else
    the live API when ``HOLYSHEEP_API_KEY`` is set, else the emulator."""
    if _replaying(request):
        return replay_target(os.environ)
    live = live_target(os.environ)
    if live is not None:
        return live
    return emulator_target(request.getfixturevalue("holysheep_emulator").url)


@pytest.fixture(autouse=True)
def _holysheep_vcr_env(request: pytest.FixtureRequest) -> Iterator[Target | None]:
    if request.node.get_closest_marker(MARKER) is None:
        yield None
        return
    target: Target = request.getfixturevalue("holysheep_target")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV_KEY, target.api_key)
        patch.setenv(ENV_BASE_URL, target.base_url)
        yield target


def _replaying(request: pytest.FixtureRequest) -> bool:
    mode = request.config.getoption("--record-mode", None)
    config: dict[str, Any] = dict(request.getfixturevalue("vcr_config"))
    for marker in reversed(list(request.node.iter_markers("vcr"))):
        config.update(marker.kwargs)
    mode = mode or config.get("record_mode", "none")
    if mode != "once":
        return is_replaying(mode, cassette_exists=False)
    suffix = "." + config.get("serializer", "yaml")
    name = request.getfixturevalue("default_cassette_name")
    path = os.path.join(request.getfixturevalue("vcr_cassette_dir"), name + suffix)
    return is_replaying(mode, cassette_exists=os.path.exists(path))


def _is_unmatched_request(exc: BaseException | None) -> bool:
    try:
        from vcr.errors import CannotOverwriteExistingCassetteException
    except ImportError:  # pragma: no cover - the marker requires vcrpy
        return False
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, CannotOverwriteExistingCassetteException):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
