"""Secret filtering for recorded HTTP interactions.

A :class:`Scrubber` runs on every request and response vcrpy records (and on every request it
looks up, so recordings and live requests are compared in the same, filtered form). It drops
every header that can carry a credential or an account id, and replaces each occurrence of a
key in the URL, the headers it keeps and the bodies with :data:`REDACTED`. The keys it knows
are those the caller names, ``HOLYSHEEP_API_KEY``, every key a recorded request presented,
and anything shaped like a HolySheep key (``hs-`` then eight or more key characters).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..config import ENV_KEY

__all__ = [
    "LOOPBACK_HOSTS",
    "PUBLIC_ORIGIN",
    "REDACTED",
    "SECRET_HEADERS",
    "SECRET_QUERY_PARAMETERS",
    "Scrubber",
    "is_secret_header",
]

REDACTED = "<HOLYSHEEP_API_KEY>"
"""What a key becomes in a cassette."""

PUBLIC_ORIGIN = "https://api.holysheep.ai"
"""Where recordings made against a loopback server (the emulator) say they went."""

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "cookie",
        "set-cookie",
        "openai-organization",
        "openai-project",
        "x-organization-id",
        "x-project-id",
    }
)
"""Headers never recorded, in requests or responses. Any other header whose name contains
one of the words in ``_SECRET_NAME`` (auth, key, token, secret, cookie, session,
organization, project, ...) or whose value holds a key goes too."""

SECRET_QUERY_PARAMETERS = frozenset({"api_key", "api-key", "key", "access_token", "token"})

# Whole words of a header name, so that x-ratelimit-remaining-tokens (a count) stays.
_SECRET_NAME = re.compile(
    r"(?:^|[-_])(?:authorization|auth|api[-_]?key|key|token|secret|password|passwd|cookie"
    r"|session|organization|org|project)(?:$|[-_])",
    re.IGNORECASE,
)
_KEY_SHAPE = r"(?<![A-Za-z0-9_-])hs-[A-Za-z0-9_-]{8,}"
# A bearer token of eight or more token characters: "Bearer tokens" in prose stays.
_CREDENTIAL = re.compile(_KEY_SHAPE + r"|\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=_-]{8,}")
_CREDENTIAL_BYTES = re.compile(_CREDENTIAL.pattern.encode())
_MIN_SECRET_LENGTH = 8  # shorter "keys" would shred ordinary text


def is_secret_header(name: str) -> bool:
    """Whether a header of this name is dropped whatever its value."""
    return name.lower() in SECRET_HEADERS or _SECRET_NAME.search(name) is not None


class Scrubber:
    """Removes credentials from vcrpy's requests and response dicts.

    Args:
        secrets: extra strings never to record (other keys, tokens, account ids).
        public_origin: what a loopback ``scheme://host:port`` becomes; None keeps it.
        env: where ``HOLYSHEEP_API_KEY`` is read, at each call (default ``os.environ``).
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        *,
        public_origin: str | None = PUBLIC_ORIGIN,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._given = frozenset(s for s in secrets if len(s) >= _MIN_SECRET_LENGTH)
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._public_origin = public_origin
        self._env = os.environ if env is None else env

    # vcrpy's pytest integration deep-copies its config for each cassette; every copy must
    # share this object so that a key seen in a request is also scrubbed from its response.
    def __deepcopy__(self, memo: dict[int, Any]) -> Scrubber:
        return self

    def __repr__(self) -> str:
        return f"Scrubber(public_origin={self._public_origin!r})"

    # --- what vcrpy calls -----------------------------------------------------------------

    def request(self, request: Any) -> Any:
        """``before_record_request``: learn the presented key, then drop or redact it."""
        self._learn(request.headers)
        secrets = self._secrets()
        rewrite_host = self._public_origin and urlsplit(request.uri).hostname in LOOPBACK_HOSTS
        for name, value in list(request.headers.items()):
            if is_secret_header(name) or self._holds_secret(str(value), secrets):
                del request.headers[name]
            elif rewrite_host and name.lower() == "host":
                # The emulator's random loopback port would churn every re-recording.
                request.headers[name] = urlsplit(self._public_origin).netloc
        request.uri = self._clean_uri(request.uri, secrets)
        body = request.body
        if isinstance(body, (bytes, str)):
            request.body = self._clean_bytes(_as_bytes(body), secrets)
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        """``before_record_response``: drop secret headers, redact keys in the body."""
        secrets = self._secrets()
        headers = response.get("headers") or {}
        response["headers"] = {
            name: values
            for name, values in headers.items()
            if not is_secret_header(name)
            and not any(self._holds_secret(str(v), secrets) for v in _as_list(values))
        }
        body = response.get("body") or {}
        if isinstance(body.get("string"), (bytes, str)):
            body["string"] = self._clean_bytes(_as_bytes(body["string"]), secrets)
        return response

    def clean_text(self, text: str) -> str:
        """``text`` with every known key and key-shaped string replaced by ``REDACTED``."""
        return self._clean_bytes(text.encode(), self._secrets()).decode()

    # --- helpers ----------------------------------------------------------------------------

    def _learn(self, headers: Mapping[str, Any]) -> None:
        found = []
        for name, value in headers.items():
            lowered = name.lower()
            text = str(value)
            if lowered in ("authorization", "proxy-authorization"):
                _, _, token = text.partition(" ")
                found.append(token.strip() or text)
            elif is_secret_header(lowered) and lowered not in ("cookie", "set-cookie"):
                found.append(text)
        with self._lock:
            self._seen.update(s for s in found if len(s) >= _MIN_SECRET_LENGTH)

    def _secrets(self) -> list[str]:
        with self._lock:
            secrets = set(self._seen)
        secrets |= self._given
        env_key = self._env.get(ENV_KEY, "")
        if len(env_key) >= _MIN_SECRET_LENGTH:
            secrets.add(env_key)
        # Longest first, so a key that contains another is replaced whole.
        return sorted(secrets, key=len, reverse=True)

    @staticmethod
    def _holds_secret(value: str, secrets: list[str]) -> bool:
        return _CREDENTIAL.search(value) is not None or any(s in value for s in secrets)

    @staticmethod
    def _clean_bytes(data: bytes, secrets: list[str]) -> bytes:
        for secret in secrets:
            data = data.replace(secret.encode(), REDACTED.encode())
        return _CREDENTIAL_BYTES.sub(_redact_match, data)

    def _clean_uri(self, uri: str, secrets: list[str]) -> str:
        parts = urlsplit(uri)
        netloc = parts.netloc.rpartition("@")[2]  # user:password@ never recorded
        scheme = parts.scheme
        if self._public_origin and parts.hostname in LOOPBACK_HOSTS:
            public = urlsplit(self._public_origin)
            scheme, netloc = public.scheme, public.netloc
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, REDACTED if k.lower() in SECRET_QUERY_PARAMETERS else v) for k, v in pairs]
            )
        cleaned = urlunsplit((scheme, netloc, parts.path, query, parts.fragment))
        return self._clean_bytes(cleaned.encode(), secrets).decode()


def _redact_match(match: re.Match[bytes]) -> bytes:
    text = match.group(0)
    if text.startswith((b"Bearer", b"Basic")):
        return text.split(None, 1)[0] + b" " + REDACTED.encode()
    return REDACTED.encode()


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _as_list(values: Any) -> list[Any]:
    return list(values) if isinstance(values, (list, tuple)) else [values]
