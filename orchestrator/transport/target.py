"""Where to connect and how to authenticate: :class:`Target` and :func:`build_target`.

Pure logic, no I/O. URL rules:

- ``openai``: ``wss://api.openai.com/v1/realtime?model=<model>`` (``url`` overrides the
  base, e.g. a proxy speaking the same API).
- ``azure`` (Azure OpenAI v1 API): ``url`` is the resource endpoint
  ``https://<resource>.openai.azure.com`` → ``wss://<resource>.openai.azure.com/openai/v1/
  realtime?model=<deployment>`` (``deployment`` defaults to ``model``).
- ``azure-legacy`` (preview API): ``wss://<resource>.openai.azure.com/openai/realtime?
  api-version=<api_version>&deployment=<deployment>``.
- ``custom``: any ``ws://``/``wss://``/``http(s)://`` base. A base such as
  ``ws://127.0.0.1:8765/v1`` gets ``/realtime?model=<model>`` appended; a URL whose path
  already ends in ``/realtime`` is kept and only gets ``model`` added when missing.

``http``/``https`` are mapped to ``ws``/``wss``. Headers: ``OpenAI-Beta: realtime=v1``
for the beta dialect; ``Authorization: Bearer <key>`` (OpenAI, custom) or ``api-key:
<key>`` (Azure). Keys come from the ``api_key`` argument or, if absent, the environment
(``OPENAI_API_KEY``; ``AZURE_OPENAI_API_KEY`` for Azure).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import Final, Literal

import attrs

from orchestrator.protocol.dialect import Dialect
from orchestrator.transport.secret import MASK, Secret, redact

Provider = Literal["openai", "azure", "azure-legacy", "custom"]
Auth = Literal["bearer", "api-key"]

OPENAI_BASE_URL: Final = "wss://api.openai.com/v1"
#: Default :attr:`Target.max_message_size`: the largest message accepted from the server.
#: Realtime server events are far smaller (audio deltas ~6 KB, items a few hundred KB);
#: the limit bounds what one connection can be made to buffer and decode.
DEFAULT_MAX_MESSAGE_SIZE: Final = 4 * 2**20
_PROVIDERS: Final = ("openai", "azure", "azure-legacy", "custom")
#: The environment variable holding each provider's API key (when none is passed).
API_KEY_ENV: Final[Mapping[str, str]] = {
    "openai": "OPENAI_API_KEY",
    "custom": "OPENAI_API_KEY",
    "azure": "AZURE_OPENAI_API_KEY",
    "azure-legacy": "AZURE_OPENAI_API_KEY",
}
# Headers the transport owns; a caller's extra header may not override them.
_RESERVED_HEADERS: Final = frozenset(
    {"authorization", "api-key", "openai-beta", "host", "upgrade", "connection"}
)
# RFC 9110 token characters (header names) and field-value characters (no CR, LF, NUL).
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE: Final = re.compile(r"[^\r\n\x00]*")


def _headers_repr(headers: tuple[tuple[str, str], ...]) -> str:
    # Header values may be credentials of their own (a relay's token): show names only.
    return "(" + ", ".join(f"({name!r}, {MASK!r})" for name, _ in headers) + ")"


@attrs.frozen
class Target:
    """One endpoint to open realtime websockets against.

    ``url`` is the complete ``ws://``/``wss://`` URL (path and query included),
    ``dialect`` selects the protocol shape, ``api_key`` is sent as ``auth`` says
    (``"bearer"`` → ``Authorization: Bearer``, ``"api-key"`` → Azure's ``api-key``), and
    ``headers`` are extra request headers. ``max_message_size`` is the largest message
    (bytes) accepted from the server: a bigger one closes the connection with 1009
    (default :data:`DEFAULT_MAX_MESSAGE_SIZE`, 4 MiB). ``repr`` shows neither the key nor
    header values. Build one with :func:`build_target` unless you already have a full
    URL. Raises ``ValueError`` naming the field (never quoting a header value).
    """

    url: str
    dialect: Dialect = Dialect.GA
    api_key: Secret | None = None
    auth: Auth = "bearer"
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=_headers_repr)
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE

    def __attrs_post_init__(self) -> None:
        _split_ws_url(self.url)  # validates scheme and host
        if self.auth not in ("bearer", "api-key"):
            raise ValueError(f"Target.auth must be 'bearer' or 'api-key', not {self.auth!r}")
        for name, value in self.headers:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"Target.headers: {name!r} is not a valid header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"Target.headers: {name!r} is set by the transport itself")
            if not _HEADER_VALUE.fullmatch(value):
                raise ValueError(f"Target.headers: the value of {name!r} has a line break or NUL")
        size = self.max_message_size
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(
                f"Target.max_message_size must be a positive number of bytes, not {size!r}"
            )

    @property
    def host(self) -> str:
        """Host name (for the ``Host`` header, SNI and certificate checks)."""
        return _split_ws_url(self.url)[1]

    @property
    def port(self) -> int:
        """TCP port (explicit, else 443 for ``wss`` and 80 for ``ws``)."""
        return _split_ws_url(self.url)[2]

    @property
    def resource(self) -> str:
        """Request target: path plus query, e.g. ``/v1/realtime?model=gpt-realtime``."""
        return _split_ws_url(self.url)[3]

    @property
    def secure(self) -> bool:
        """Whether the URL is ``wss`` (TLS, certificate verification on)."""
        return _split_ws_url(self.url)[0] == "wss"

    @property
    def safe_url(self) -> str:
        """The URL with the key masked, for messages (in case a relay takes it in the query)."""
        return redact(self.url, self.api_key)

    def request_headers(self) -> list[tuple[bytes, bytes]]:
        """The handshake headers, raw key included. Never log the result."""
        out: list[tuple[bytes, bytes]] = []
        if self.api_key:
            if self.auth == "bearer":
                out.append((b"authorization", b"Bearer " + self.api_key.reveal().encode()))
            else:
                out.append((b"api-key", self.api_key.reveal().encode()))
        if self.dialect is Dialect.BETA:
            out.append((b"openai-beta", b"realtime=v1"))
        out.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers)
        return out


def _split_ws_url(url: str) -> tuple[str, str, int, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"Target.url must be a ws:// or wss:// URL, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"Target.url has no host: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "wss" else 80)
    except ValueError as exc:
        raise ValueError(f"Target.url has an invalid port: {url!r}") from exc
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    host = parts.hostname
    return parts.scheme, host, port, resource


def _ws_scheme(url: str, param: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"{param}: expected a ws://, wss://, http:// or https:// URL, got {url!r}")
    return parts._replace(scheme=scheme)


def _with_query(parts: urllib.parse.SplitResult, **params: str) -> str:
    """Add ``params`` missing from the query (existing values win), keep order."""
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    present = {k for k, _ in query}
    query += [
        (k.replace("_", "-"), v) for k, v in params.items() if k.replace("_", "-") not in present
    ]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query), fragment=""))


def realtime_url(base: str, *, model: str | None) -> str:
    """The realtime URL for an OpenAI-compatible ``base`` (see the module docstring)."""
    parts = _ws_scheme(base, "url")
    path = parts.path.rstrip("/")
    if not path.endswith("/realtime"):
        path += "/realtime"
    parts = parts._replace(path=path)
    return _with_query(parts, **({"model": model} if model else {}))


def _azure_parts(
    endpoint: str, path: str, known_suffixes: tuple[str, ...]
) -> urllib.parse.SplitResult:
    """``endpoint`` with ``path`` in place of whichever of ``known_suffixes`` it ends in
    (so an endpoint that already names part of the path is not doubled)."""
    parts = _ws_scheme(endpoint, "url")
    base = parts.path.rstrip("/")
    for suffix in known_suffixes:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return parts._replace(path=base + path)


def azure_url(endpoint: str, *, deployment: str) -> str:
    """Azure OpenAI v1 realtime URL for resource ``endpoint`` and ``deployment``."""
    parts = _azure_parts(endpoint, "/openai/v1/realtime", ("/realtime", "/openai/v1", "/openai"))
    return _with_query(parts, model=deployment)


def azure_legacy_url(endpoint: str, *, deployment: str, api_version: str) -> str:
    """Legacy (preview) Azure OpenAI realtime URL."""
    parts = _azure_parts(endpoint, "/openai/realtime", ("/realtime", "/openai"))
    return _with_query(parts, api_version=api_version, deployment=deployment)


def build_target(
    *,
    url: str | None = None,
    provider: Provider = "openai",
    model: str | None,
    deployment: str | None = None,
    api_version: str | None = None,
    dialect: Dialect = Dialect.GA,
    api_key: Secret | str | None = None,
    env: Mapping[str, str] = os.environ,
    auth: Auth | None = None,
    headers: Mapping[str, str] | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> Target:
    """Build a :class:`Target` for ``provider`` (rules in the module docstring).

    ``model`` is the model name (OpenAI, custom) or the default deployment name (Azure).
    ``api_key`` wins over ``env``; ``openai`` and both Azure kinds require a key, custom
    servers do not. ``auth`` overrides the provider's default header style (e.g.
    ``"bearer"`` with an Entra token on Azure). ``max_message_size``: the largest
    server message accepted, in bytes (see :class:`Target`). Raises ``ValueError``
    naming the offending parameter.
    """
    if provider not in _PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(_PROVIDERS)}; got {provider!r}")
    if not isinstance(dialect, Dialect):
        raise ValueError(f"dialect must be a Dialect, got {dialect!r}")
    if provider == "openai":
        final_url = realtime_url(url or OPENAI_BASE_URL, model=_need(model, "model", provider))
    elif provider == "custom":
        final_url = realtime_url(_need(url, "url", provider), model=model)
    elif provider == "azure":
        dep = _need(deployment or model, "deployment (or model)", provider)
        final_url = azure_url(_need(url, "url", provider), deployment=dep)
    else:
        dep = _need(deployment or model, "deployment (or model)", provider)
        final_url = azure_legacy_url(
            _need(url, "url", provider),
            deployment=dep,
            api_version=_need(api_version, "api_version", provider),
        )

    key: Secret | None
    if isinstance(api_key, Secret):
        key = api_key if api_key else None
    elif api_key:
        key = Secret(api_key)
    else:
        env_name = API_KEY_ENV[provider]
        env_value = env.get(env_name)
        key = Secret(env_value) if env_value else None
        if key is None and provider != "custom":
            raise ValueError(
                f"no API key for provider={provider!r}: pass api_key or set {env_name}"
            )
    default_auth: Auth = "api-key" if provider in ("azure", "azure-legacy") else "bearer"
    return Target(
        url=final_url,
        dialect=dialect,
        api_key=key,
        auth=auth or default_auth,
        headers=tuple((headers or {}).items()),
        max_message_size=max_message_size,
    )


def _need(value: str | None, param: str, provider: str) -> str:
    if not value:
        raise ValueError(f"{param} is required for provider={provider!r}")
    return value
