"""The handshake of the embedded Realtime server: which path, dialect and model a
websocket request asks for, or the HTTP refusal (pure; never logs header values).

Handshake rules (the same for TCP and for :func:`serve_stream`):

- paths: ``/v1/realtime?model=M``, ``/openai/v1/realtime?model=M`` (Azure GA) and
  ``/openai/realtime?api-version=V&deployment=D`` (legacy Azure; the deployment is the
  model). Anything else: HTTP 404. A missing model is accepted, then answered like the
  real service: an ``invalid_request_error.missing_model`` error and close 4000.
- dialect: beta when the ``OpenAI-Beta: realtime=v1`` header is present, GA otherwise.
- auth: when a key is configured, ``Authorization: Bearer KEY`` or ``api-key: KEY`` is
  required, otherwise HTTP 401 with an OpenAI-style JSON error body (no session).
- fault ``reject_percent``: HTTP 429 with a ``rate_limit_exceeded`` body.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs, urlsplit

import attrs
import orjson

from orchestrator.protocol import Dialect

from .config import ServerConfig

__all__ = ["REALTIME_PATHS", "Rejection", "Route", "error_body", "route_request"]

REALTIME_PATHS = ("/v1/realtime", "/openai/v1/realtime", "/openai/realtime")


@attrs.frozen
class Route:
    """What a handshake asked for."""

    dialect: Dialect
    model: str | None


@attrs.frozen
class Rejection:
    """An HTTP refusal of a handshake."""

    status: int
    reason: str
    body: bytes


def error_body(message: str, type_: str, code: str | None) -> bytes:
    """An OpenAI-style JSON error body of an HTTP refusal."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


def route_request(
    path: str, headers: list[tuple[bytes, bytes]], config: ServerConfig
) -> Route | Rejection:
    """Decide a handshake from its path and headers (pure; never logs header values)."""
    parts = urlsplit(path)
    route_path = parts.path.rstrip("/") or "/"
    if route_path not in REALTIME_PATHS:
        return Rejection(
            404,
            "not_found",
            error_body(f"Invalid URL (GET {parts.path})", "invalid_request_error", None),
        )
    query = parse_qs(parts.query)
    hdr = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
    if config.api_key is not None:
        presented = None
        auth = hdr.get("authorization", "")
        if auth.lower().startswith("bearer "):
            presented = auth[7:].strip()
        elif "api-key" in hdr:
            presented = hdr["api-key"].strip()
        if presented is None:
            return Rejection(
                401,
                "unauthorized",
                error_body(
                    "Missing bearer or basic authentication in header",
                    "invalid_request_error",
                    None,
                ),
            )
        if not hmac.compare_digest(presented.encode(), config.api_key.reveal().encode()):
            return Rejection(
                401,
                "unauthorized",
                error_body(
                    "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    "invalid_api_key",
                ),
            )
    if route_path == "/openai/realtime":
        if not query.get("api-version"):
            return Rejection(
                400,
                "bad_request",
                error_body(
                    "Missing required query parameter: api-version", "invalid_request_error", None
                ),
            )
        model = next(iter(query.get("deployment", [])), None)
    else:
        model = next(iter(query.get("model", [])), None)
    beta = hdr.get("openai-beta", "").replace(" ", "").lower()
    dialect = Dialect.BETA if "realtime=v1" in beta else Dialect.GA
    return Route(dialect=dialect, model=model or None)
