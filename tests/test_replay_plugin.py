"""The ``holysheep`` pytest plugin as users meet it, in pytest sessions of their own
(pytester): the marker replays with the network blocked and a dummy key, a changed request
fails with a hint, and unmarked tests are left exactly as they were."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

COMMITTED = Path(__file__).parent.parent / "cassettes" / "core" / "test_replay_client"

USER_TESTS = """
import os, socket
import pytest
from holysheep_core import HolySheepClient
from holysheep_core.testing import REPLAY_API_KEY

PROMPT = "Name one colour of the rainbow."

@pytest.fixture
def vcr_config():
    return {"match_on": ["uri"], "record_mode": "none"}

@pytest.mark.holysheep_vcr
def test_chat_completion(holysheep_target):
    assert holysheep_target.replaying and os.environ["HOLYSHEEP_API_KEY"] == REPLAY_API_KEY
    with HolySheepClient(max_retries=0) as client:  # key and URL from the environment
        answer = client.chat_completion(
            model="deepseek-v3.2", messages=[{"role": "user", "content": PROMPT}], temperature=0
        )
    assert answer.choices[0].message.content

@pytest.mark.holysheep_vcr
def test_network_is_blocked():
    with socket.socket() as sock, pytest.raises(RuntimeError, match="Network is disabled"):
        sock.connect(("127.0.0.1", 9))

@pytest.mark.holysheep_vcr
@pytest.mark.default_cassette("test_chat_completion.yaml")
def test_changed_prompt():
    with HolySheepClient(max_retries=0) as client:
        client.chat_completion(
            model="deepseek-v3.2",
            messages=[{"role": "user", "content": PROMPT + " In French."}],
            temperature=0,
        )

@pytest.mark.vcr
def test_unmarked_keeps_the_users_config(vcr):
    assert [m.__name__ for m in vcr._match_on] == ["uri"]
    assert os.environ.get("HOLYSHEEP_API_KEY") == "users-own-key-123456"

def test_unmarked_keeps_the_network():
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", 9))  # reached the port: nothing blocked it

@pytest.mark.holysheep_vcr(record_mode="once")
@pytest.mark.default_cassette("test_chat_completion")
def test_once_with_a_cassette_replays(holysheep_target):
    assert holysheep_target.source == "cassette"

@pytest.mark.holysheep_vcr(record_mode="once")
def test_once_without_a_cassette_records_live_with_the_users_key(holysheep_target):
    assert holysheep_target.source == "live"
    assert os.environ["HOLYSHEEP_API_KEY"] == holysheep_target.api_key == "users-own-key-123456"
    assert "users-own-key" not in repr(holysheep_target)

class TestPresetInOwnConfig:
    @pytest.fixture
    def vcr_config(self, holysheep_vcr_config):
        return {**holysheep_vcr_config, "record_mode": "none"}

    @pytest.mark.vcr
    @pytest.mark.default_cassette("test_chat_completion.yaml")
    def test_replays_with_the_json_body_matcher(self, vcr):
        assert "json_body" in [m.__name__ for m in vcr._match_on]
        with HolySheepClient(api_key="any-key-12345678", base_url="https://x.test/v1") as c:
            c.chat_completion(
                model="deepseek-v3.2",
                messages=[{"role": "user", "content": PROMPT}],
                temperature=0,
            )
"""


@pytest.fixture
def user_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    cassettes = pytester.path / "cassettes" / "test_user"
    cassettes.mkdir(parents=True)
    shutil.copy(COMMITTED / "test_chat_completion.yaml", cassettes)
    pytester.makepyfile(test_user=USER_TESTS)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "users-own-key-123456")
    monkeypatch.delenv("HOLYSHEEP_BASE_URL", raising=False)
    return pytester


# Plugins these sessions do not need; unraisableexception's repeated gc.collect() alone costs
# seconds in a process that has LangChain and LlamaIndex loaded.
QUIET = [
    f"-p{flag}"
    for flag in (
        "no:cacheprovider",
        "no:unraisableexception",
        "no:threadexception",
        "no:langsmith_plugin",
        "no:benchmark",
        "no:codspeed",
        "no:syrupy",
        "no:hypothesispytest",
    )
]


def test_marker_replays_blocks_and_leaves_other_tests_alone(user_project: pytest.Pytester) -> None:
    result = user_project.runpytest(*QUIET)
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_changed_prompt*",
            "*CannotOverwriteExistingCassetteException*",
            "*json_body - assertion failure*",
            "*body.messages[[]0[]].content*In French*!= recorded*",
            "*holysheep replay*",
            "*pytest --record-mode=rewrite <this test>*",
        ]
    )


def test_marker_without_pytest_recording_is_a_usage_error(
    user_project: pytest.Pytester,
) -> None:
    result = user_project.runpytest(*QUIET, "-pno:recording")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*holysheep_vcr needs pytest-recording*[testing]*"])
