"""The declared floors of the test dependencies: one spec everywhere, and it is what runs.

``make test-floor`` installs exactly the declared vcrpy floor and runs the replay tests on it;
these checks keep that floor declared once and satisfied by what the suite runs on.
"""

from __future__ import annotations

from importlib.metadata import distribution, version

from packaging.requirements import Requirement
from packaging.version import Version

# The oldest vcrpy whose aiohttp stub replays our streams (older ones raise AttributeError
# on every aiohttp cassette with aiohttp 3.10+).
KNOWN_GOOD_VCRPY = Version("8.5.0")


def vcrpy_requirements() -> dict[str, Requirement]:
    """The vcrpy requirement of each extra that has one."""
    found = {}
    for line in distribution("holysheep-integrations").requires or ():
        requirement = Requirement(line)
        if requirement.name == "vcrpy" and requirement.marker is not None:
            extra = str(requirement.marker).split("==")[-1].strip(" '\"")
            found[extra] = requirement
    return found


def floor(requirement: Requirement) -> Version:
    return min(Version(s.version) for s in requirement.specifier if s.operator == ">=")


def test_every_extra_declares_the_same_working_vcrpy_floor() -> None:
    requirements = vcrpy_requirements()
    assert set(requirements) == {"testing", "test"}
    assert len({str(r.specifier) for r in requirements.values()}) == 1
    assert all(floor(r) >= KNOWN_GOOD_VCRPY for r in requirements.values())


def test_the_installed_vcrpy_satisfies_the_declared_range() -> None:
    installed = Version(version("vcrpy"))
    for requirement in vcrpy_requirements().values():
        assert requirement.specifier.contains(installed), (requirement, installed)
