"""Configuration of the embedded Realtime server (one frozen value per run)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import orjson

from orchestrator.transport import Secret

from .defaults import RATE_LIMIT_REQUESTS, RATE_LIMIT_TOKENS
from .faults import FaultConfig
from .latency import LatencyModel

#: Default largest accepted client frame (the service documents 15 MiB per append).
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024


class ConfigError(ValueError):
    """Invalid server configuration (the message names the option and the value)."""


@attrs.frozen
class ToolRule:
    """If ``pattern`` (a regex, searched case-insensitively) matches the user's text or
    transcript and the session offers a tool named ``tool``, call it with ``arguments``
    (a JSON object text)."""

    pattern: str
    tool: str
    arguments: str = "{}"
    _regex: re.Pattern[str] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        try:
            regex = re.compile(self.pattern, re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(
                f"tool rule for {self.tool!r}: bad regex {self.pattern!r}: {exc}"
            ) from None
        try:
            args = orjson.loads(self.arguments)
        except orjson.JSONDecodeError:
            raise ConfigError(
                f"tool rule for {self.tool!r}: arguments are not valid JSON: {self.arguments!r}"
            ) from None
        if not isinstance(args, dict):
            raise ConfigError(f"tool rule for {self.tool!r}: arguments must be a JSON object")
        object.__setattr__(self, "_regex", regex)

    def matches(self, text: str) -> bool:
        """Whether the rule's pattern occurs in ``text``."""
        return self._regex.search(text) is not None

    @classmethod
    def parse(cls, spec: str) -> ToolRule:
        """Parse the CLI form ``REGEX=>TOOL`` or ``REGEX=>TOOL:{json arguments}``."""
        pattern, sep, rest = spec.partition("=>")
        if not sep or not pattern or not rest:
            raise ConfigError(f"tool rule {spec!r}: expected REGEX=>TOOL[:{{json}}]")
        tool, colon, args = rest.partition(":")
        return cls(pattern=pattern, tool=tool.strip(), arguments=args if colon else "{}")


@attrs.frozen
class McpToolDef:
    """One tool the simulated MCP servers list: name, JSON schema of its input,
    description, and whether it is read-only (``annotations.readOnlyHint``)."""

    name: str
    input_schema: Mapping[str, Any] = attrs.field(
        factory=lambda: {"type": "object", "properties": {}}
    )
    description: str | None = None
    read_only: bool = True

    @classmethod
    def parse(cls, spec: str) -> McpToolDef:
        """Parse the CLI form ``NAME`` or ``NAME:{json schema}``; raises
        :class:`ConfigError` naming the tool spec and what is wrong. Tools given so are
        read-only (``annotations.readOnlyHint``)."""
        name, colon, schema_text = spec.partition(":")
        name = name.strip()
        if not name or any(c.isspace() for c in name):
            raise ConfigError(f"MCP tool {spec!r}: expected NAME[:JSON-SCHEMA]")
        if not colon:
            return cls(name)
        try:
            schema = orjson.loads(schema_text)
        except orjson.JSONDecodeError:
            raise ConfigError(
                f"MCP tool {name!r}: the schema is not valid JSON: {schema_text!r}"
            ) from None
        if not isinstance(schema, dict):
            raise ConfigError(f"MCP tool {name!r}: the schema must be a JSON object")
        return cls(name, schema)

    def listed(self) -> dict[str, Any]:
        """The tool as an ``mcp_list_tools`` item lists it."""
        return {
            "name": self.name,
            "input_schema": dict(self.input_schema),
            "description": self.description,
            "annotations": {"readOnlyHint": self.read_only},
        }


def _object(**props: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: {"type": v} for k, v in props.items()},
        "required": list(props),
    }


DEFAULT_MCP_TOOLS: tuple[McpToolDef, ...] = (
    McpToolDef("search_docs", _object(query="string"), "Search the documentation."),
    McpToolDef("fetch_page", _object(url="string"), "Fetch a page by its URL."),
    McpToolDef("create_ticket", _object(title="string"), "Open a ticket.", read_only=False),
)


def _key_converter(value: Secret | str | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value or None
    return Secret(value) if value else None


@attrs.frozen
class ServerConfig:
    """Everything that shapes a server run.

    Networking: ``host``/``port`` (port 0 picks a free one); binding anything but
    loopback needs ``allow_remote``. ``api_key``: when set, clients must present it as
    ``Authorization: Bearer KEY`` or ``api-key: KEY`` (HTTP 401 otherwise); never
    printed. ``seed`` drives every random choice (latency draws, transcripts, faults).
    ``groundtruth_path``: append one JSON line per response (see ``groundtruth``).
    ``tool_rules``: regex rules deciding function calls; ``spoken_transcripts``: the
    transcripts given to successive committed audio turns of a connection (cycled),
    instead of the generated placeholder, so spoken turns can drive tool rules.
    ``ping_interval_s``: send websocket PINGs this often (the real service: ~20.3 s;
    ``None`` = off). ``hearing_dir``: a voice cache (:mod:`orchestrator.audio.voices.layout`)
    whose lines the server recognises in committed audio turns: the transcript of a turn
    that holds one is its text (see :mod:`.hearing`; ``None`` = hearing off).
    ``greeting``: the assistant speaks this text first, as a response started when the
    first ``session.update`` of a connection has been answered (``None`` = off).
    ``rate_limit_tokens_per_min`` / ``rate_limit_requests_per_min``: the server-wide
    budgets of :mod:`.rate_limits` (responses past them fail with ``rate_limit_exceeded``).
    ``mcp_tools``: the tools every simulated MCP server lists (see :mod:`.mcp`).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    allow_remote: bool = False
    api_key: Secret | None = attrs.field(default=None, converter=_key_converter, repr=False)
    seed: int = 0
    latency: LatencyModel = LatencyModel()
    faults: FaultConfig = FaultConfig()
    tool_rules: tuple[ToolRule, ...] = ()
    tool_name_matching: bool = True
    spoken_transcripts: tuple[str, ...] = ()
    groundtruth_path: Path | None = None
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    default_model: str = "gpt-realtime"
    ping_interval_s: float | None = None
    hearing_dir: Path | None = None
    greeting: str | None = None
    rate_limit_tokens_per_min: int = RATE_LIMIT_TOKENS
    rate_limit_requests_per_min: int = RATE_LIMIT_REQUESTS
    mcp_tools: tuple[McpToolDef, ...] = attrs.field(default=DEFAULT_MCP_TOOLS, converter=tuple)

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        if not self.allow_remote and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to bind {self.host!r}: the mock server binds loopback only "
                "unless allow_remote (--allow-remote) is set"
            )
        if self.max_message_size < 1024:
            raise ConfigError("max_message_size must be at least 1024 bytes")
        if self.greeting is not None and not self.greeting.strip():
            raise ConfigError("greeting must not be empty")
        names = [t.name for t in self.mcp_tools]
        if len(set(names)) != len(names):
            raise ConfigError(f"mcp_tools: a tool name is given twice: {names}")
        if self.rate_limit_tokens_per_min < 1 or self.rate_limit_requests_per_min < 1:
            raise ConfigError("rate limits must be at least 1 per minute")


def is_loopback(host: str) -> bool:
    """True for names/addresses that only reach this machine: ``localhost`` (also with
    the root dot, ``localhost.``) and literal loopback addresses (``127.0.0.0/8``,
    ``::1``, also bracketed ``[::1]``, and IPv4-mapped ``::ffff:127.0.0.1``).

    Any other name is not loopback, whatever it starts with (``127.evil.example`` is a
    DNS name that may resolve anywhere).
    """
    h = host.strip().lower()
    if h in ("localhost", "localhost."):
        return True
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    try:
        address = ipaddress.ip_address(h)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
