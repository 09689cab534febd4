"""Record and replay HolySheep calls in tests, with keys kept out of the recordings.

With pytest (pytest-recording, installed by the ``testing`` extra), mark a test::

    @pytest.mark.holysheep_vcr
    def test_my_chain():
        assert "Paris" in my_chain.invoke("Capital of France?")

It replays from its cassette with the network blocked and a dummy key; with
``--record-mode=rewrite`` it records against the live API when ``HOLYSHEEP_API_KEY`` is set,
else against the bundled emulator. Without pytest, ``make_vcr()`` gives a configured
``vcr.VCR``; ``vcr_config()`` gives the same options as a dict; ``find_leaks()`` checks
written cassettes.
"""

from .leaks import Leak, find_leaks
from .matching import JSON_BODY, first_difference, json_body, register_matchers
from .preset import MATCH_ON, make_vcr, vcr_config
from .scrub import PUBLIC_ORIGIN, REDACTED, SECRET_HEADERS, Scrubber, is_secret_header
from .target import EMULATOR_API_KEY, REPLAY_API_KEY, Target, is_replaying

__all__ = [
    "EMULATOR_API_KEY",
    "JSON_BODY",
    "MATCH_ON",
    "PUBLIC_ORIGIN",
    "REDACTED",
    "REPLAY_API_KEY",
    "SECRET_HEADERS",
    "Leak",
    "Scrubber",
    "Target",
    "find_leaks",
    "first_difference",
    "is_replaying",
    "is_secret_header",
    "json_body",
    "make_vcr",
    "register_matchers",
    "vcr_config",
]
