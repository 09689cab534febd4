"""The recorded suites: each test replays its cassette under ``cassettes/`` with the network
blocked and no key (``@pytest.mark.holysheep_vcr``, from our own pytest plugin).

``make record`` re-records them (``--record-mode=rewrite``): against the live API when
``HOLYSHEEP_API_KEY`` is set, else against the bundled emulator. The session then notes in
``cassettes/SOURCES.md`` where each re-recorded cassette came from, and when.

Layout: ``cassettes/<suite>/<test module>/<test name>.yaml``, where ``<suite>`` is the
folder under ``tests/recorded/`` (``core``, ``langchain``, ``llama_index``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from recorded_helpers import update_sources

from holysheep_core import __version__
from holysheep_core.testing import Target

RECORDED = Path(__file__).parent
CASSETTES = RECORDED.parent.parent / "cassettes"
_NOTES = pytest.StashKey[dict[str, str]]()


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    module = Path(request.node.path)
    suite = module.parent.relative_to(RECORDED)
    return str(CASSETTES / suite / module.stem)


@pytest.fixture(autouse=True)
def _note_recording_source(
    request: pytest.FixtureRequest, holysheep_target: Target, vcr_cassette_dir: str
) -> None:
    if holysheep_target.replaying:
        return
    name = request.getfixturevalue("default_cassette_name") + ".yaml"
    path = Path(vcr_cassette_dir, name).relative_to(CASSETTES)
    if holysheep_target.source == "live":
        source = f"live API ({holysheep_target.base_url})"
    else:
        source = f"emulator (holysheep-integrations {__version__})"
    today = dt.datetime.now(dt.UTC).date().isoformat()
    request.config.stash.setdefault(_NOTES, {})[path.as_posix()] = f"{source} | {today}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    notes: dict[str, Any] = session.config.stash.get(_NOTES, {})
    if notes:
        update_sources(CASSETTES, notes)
