"""The recording preset: vcrpy options that keep keys out of cassettes and make a changed
request fail instead of replaying an old answer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .matching import JSON_BODY, register_matchers
from .scrub import PUBLIC_ORIGIN, Scrubber

__all__ = ["MATCH_ON", "make_vcr", "vcr_config"]

MATCH_ON = ("method", "path", "query", JSON_BODY)
"""Host and port are left out: a recording made against the emulator on any loopback port,
or through another base URL with the same paths, replays anywhere."""

Filter = Callable[[Any], Any]


def vcr_config(
    *,
    secrets: Iterable[str] = (),
    public_origin: str | None = PUBLIC_ORIGIN,
    before_record_request: Filter | Iterable[Filter] = (),
    before_record_response: Filter | Iterable[Filter] = (),
    **options: Any,
) -> dict[str, Any]:
    """Keyword arguments for ``vcr.use_cassette`` / pytest-recording's ``vcr_config``.

    Requests match on method, path, query and the body compared as JSON (the ``json_body``
    matcher, registered by the pytest plugin or :func:`make_vcr`). Credential headers
    (``Authorization``, ``api-key``, ``x-api-key``, cookies, organisation and project ids)
    are dropped from requests and responses, every key is replaced by ``REDACTED`` in URLs
    and bodies, compressed bodies are stored decoded, and a loopback origin is recorded as
    ``public_origin``.

    Args:
        secrets: more strings never to record (besides the presented key and
            ``HOLYSHEEP_API_KEY``).
        public_origin: what a loopback ``scheme://host:port`` becomes; None keeps it.
        before_record_request: your own request filters; they run before ours, so nothing
            they add escapes the scrubbing.
        before_record_response: your own response filters, run before ours.
        **options: any other ``use_cassette`` option (``record_mode``, ...); they win.
    """
    scrubber = Scrubber(secrets, public_origin=public_origin)
    return {
        "match_on": MATCH_ON,
        "decode_compressed_response": True,
        "before_record_request": (*_filters(before_record_request), scrubber.request),
        "before_record_response": (*_filters(before_record_response), scrubber.response),
        **options,
    }


def make_vcr(
    *, secrets: Iterable[str] = (), public_origin: str | None = PUBLIC_ORIGIN, **vcr_options: Any
) -> Any:
    """A ``vcr.VCR`` with the preset and the ``json_body`` matcher, for use without pytest:
    ``with make_vcr(cassette_library_dir="cassettes").use_cassette("chat.yaml"): ...``.

    Raises:
        ImportError: vcrpy is not installed (it comes with the ``testing`` extra).
    """
    try:
        import vcr
    except ImportError as exc:
        raise ImportError(
            'recording needs vcrpy: pip install "holysheep-integrations[testing]"'
        ) from exc
    config = vcr_config(secrets=secrets, public_origin=public_origin, **vcr_options)
    return register_matchers(vcr.VCR(**config))


def _filters(value: Filter | Iterable[Filter]) -> tuple[Filter, ...]:
    return (value,) if callable(value) else tuple(value)
