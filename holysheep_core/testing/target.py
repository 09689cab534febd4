"""Which server a recorded test talks to: the cassette, the emulator or the live API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..config import DEFAULT_BASE_URL, ENV_BASE_URL, ENV_KEY

__all__ = [
    "EMULATOR_API_KEY",
    "REPLAY_API_KEY",
    "Target",
    "emulator_target",
    "is_replaying",
    "live_target",
    "replay_target",
]

REPLAY_API_KEY = "replay-only-not-a-key"
"""The key a replayed test presents: nothing leaves the process, so no real key is needed."""

EMULATOR_API_KEY = "hs-emulator-recording-key"
"""The key the recording emulator accepts; scrubbed from cassettes like any other."""

Source = Literal["cassette", "emulator", "live"]


@dataclass(frozen=True, slots=True)
class Target:
    """Where a test's HolySheep calls go: ``source`` is ``"cassette"`` when replaying,
    ``"emulator"`` or ``"live"`` when recording. The key stays out of the repr."""

    base_url: str
    api_key: str = field(repr=False)
    source: Source

    @property
    def replaying(self) -> bool:
        return self.source == "cassette"


def is_replaying(record_mode: str, cassette_exists: bool) -> bool:
    """Whether vcrpy answers from the cassette alone in this record mode."""
    return record_mode == "none" or (record_mode == "once" and cassette_exists)


def replay_target(env: Mapping[str, str]) -> Target:
    """A dummy key, and the base URL the test would use (paths must match the recording)."""
    return Target(env.get(ENV_BASE_URL) or DEFAULT_BASE_URL, REPLAY_API_KEY, "cassette")


def live_target(env: Mapping[str, str]) -> Target | None:
    """The live API when ``HOLYSHEEP_API_KEY`` is set (at ``HOLYSHEEP_BASE_URL`` if set)."""
    key = env.get(ENV_KEY)
    if not key:
        return None
    return Target(env.get(ENV_BASE_URL) or DEFAULT_BASE_URL, key, "live")


def emulator_target(url: str) -> Target:
    return Target(url, EMULATOR_API_KEY, "emulator")
