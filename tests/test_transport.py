"""Pure transport logic: URLs, headers, keys, secrets, error classification."""

from __future__ import annotations

import pytest

from orchestrator.protocol.dialect import Dialect
from orchestrator.transport import (
    HandshakeRejected,
    Secret,
    Target,
    TransportClosed,
    build_target,
    close_recoverable,
    redact,
    status_recoverable,
)

KEY = "sk-test-0123456789abcdef"


def _headers(target: Target) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in target.request_headers()}


def test_openai_default_url_and_bearer_header() -> None:
    target = build_target(model="gpt-realtime", api_key=KEY)
    assert target.url == "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    assert (target.host, target.port, target.secure) == ("api.openai.com", 443, True)
    assert target.resource == "/v1/realtime?model=gpt-realtime"
    assert _headers(target) == {"authorization": f"Bearer {KEY}"}


def test_beta_dialect_adds_openai_beta_header() -> None:
    target = build_target(model="gpt-4o-realtime-preview", api_key=KEY, dialect=Dialect.BETA)
    assert _headers(target) == {"authorization": f"Bearer {KEY}", "openai-beta": "realtime=v1"}


def test_azure_v1_url_and_api_key_header() -> None:
    target = build_target(
        provider="azure", url="https://myres.openai.azure.com", model="gpt-realtime", api_key=KEY
    )
    assert target.url == "wss://myres.openai.azure.com/openai/v1/realtime?model=gpt-realtime"
    assert _headers(target) == {"api-key": KEY}
    # deployment wins over model; an endpoint that already names /openai/v1 is not doubled
    target = build_target(
        provider="azure",
        url="https://myres.openai.azure.com/openai/v1/",
        model="gpt-realtime",
        deployment="my-dep",
        api_key=KEY,
    )
    assert target.url == "wss://myres.openai.azure.com/openai/v1/realtime?model=my-dep"


def test_azure_legacy_url() -> None:
    target = build_target(
        provider="azure-legacy",
        url="https://myres.openai.azure.com/",
        model="gpt-4o-realtime-preview",
        deployment="rt",
        api_version="2024-10-01-preview",
        dialect=Dialect.BETA,
        api_key=KEY,
    )
    assert (
        target.url
        == "wss://myres.openai.azure.com/openai/realtime?api-version=2024-10-01-preview&deployment=rt"
    )
    assert _headers(target) == {"api-key": KEY, "openai-beta": "realtime=v1"}
    with pytest.raises(ValueError, match="api_version is required"):
        build_target(
            provider="azure-legacy", url="https://r.openai.azure.com", model="m", api_key=KEY
        )


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("ws://127.0.0.1:8765/v1", "ws://127.0.0.1:8765/v1/realtime?model=m"),
        ("ws://127.0.0.1:8765/v1/", "ws://127.0.0.1:8765/v1/realtime?model=m"),
        ("ws://127.0.0.1:8765", "ws://127.0.0.1:8765/realtime?model=m"),
        ("http://localhost:9000/v1", "ws://localhost:9000/v1/realtime?model=m"),
        ("https://relay.example.com/v1", "wss://relay.example.com/v1/realtime?model=m"),
        ("wss://relay.example.com/v1/realtime", "wss://relay.example.com/v1/realtime?model=m"),
        ("ws://h/v1/realtime?model=other", "ws://h/v1/realtime?model=other"),
        ("ws://h/x/realtime?agent=7", "ws://h/x/realtime?agent=7&model=m"),
    ],
)
def test_custom_urls(base: str, expected: str) -> None:
    assert build_target(provider="custom", url=base, model="m", env={}).url == expected


def test_custom_without_key_sends_no_auth_header() -> None:
    target = build_target(provider="custom", url="ws://127.0.0.1:1/v1", model="m", env={})
    assert target.api_key is None
    assert _headers(target) == {}


def test_bad_inputs_name_the_parameter() -> None:
    with pytest.raises(ValueError, match="url: expected a ws://"):
        build_target(provider="custom", url="ftp://x/v1", model="m", env={})
    with pytest.raises(ValueError, match="url is required"):
        build_target(provider="custom", model="m", env={})
    with pytest.raises(ValueError, match="provider must be one of"):
        build_target(provider="nope", model="m", env={})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model is required"):
        build_target(model=None, api_key=KEY)
    with pytest.raises(ValueError, match="Target.url must be a ws"):
        Target(url="https://x/realtime")
    with pytest.raises(ValueError, match="set by the transport"):
        Target(url="ws://x/realtime", headers=(("Authorization", "x"),))


def test_key_from_env_and_argument_precedence() -> None:
    env = {"OPENAI_API_KEY": "sk-env", "AZURE_OPENAI_API_KEY": "az-env"}
    assert build_target(model="m", env=env).api_key == Secret("sk-env")
    assert build_target(model="m", env=env, api_key="sk-arg").api_key == Secret("sk-arg")
    assert build_target(model="m", env=env, api_key=Secret("sk-s")).api_key == Secret("sk-s")
    azure = build_target(provider="azure", url="https://r.openai.azure.com", model="d", env=env)
    assert azure.api_key == Secret("az-env")
    with pytest.raises(ValueError, match="set OPENAI_API_KEY"):
        build_target(model="m", env={})
    with pytest.raises(ValueError, match="set AZURE_OPENAI_API_KEY"):
        build_target(provider="azure", url="https://r.openai.azure.com", model="d", env={})
    entra = build_target(
        provider="azure", url="https://r.openai.azure.com", model="d", env=env, auth="bearer"
    )
    assert _headers(entra) == {"authorization": "Bearer az-env"}


def test_secret_and_target_never_show_the_key() -> None:
    secret = Secret(KEY)
    assert KEY not in str(secret) and KEY not in repr(secret) and KEY not in f"{secret}"
    assert secret.reveal() == KEY
    target = build_target(
        provider="custom", url="ws://h/v1", model="m", api_key=KEY, headers={"X-Relay-Token": KEY}
    )
    for text in (str(target), repr(target), target.safe_url):
        assert KEY not in text
    assert "X-Relay-Token" in repr(target)
    assert ("X-Relay-Token", KEY) in target.headers


def test_redact() -> None:
    assert redact(f"bad key {KEY}!", Secret(KEY)) == "bad key ***!"
    assert redact("abc", None, "") == "abc"
    assert redact("k1k2 k1", "k1", "k1k2") == "*** ***"


@pytest.mark.parametrize(
    ("code", "recoverable"),
    [
        (1000, False),
        (1001, True),
        (1006, True),
        (1011, True),
        (1012, True),
        (1013, True),
        (1008, False),
        (1009, False),
        (3000, False),
        (4000, False),
        (4999, False),
    ],
)
def test_close_code_classification(code: int, recoverable: bool) -> None:
    assert close_recoverable(code) is recoverable
    exc = TransportClosed(code, "why")
    assert (exc.code, exc.reason, exc.recoverable) == (code, "why", recoverable)
    assert str(code) in str(exc)


@pytest.mark.parametrize(
    ("status", "recoverable"),
    [(401, False), (403, False), (404, False), (400, False), (429, True), (500, True), (503, True)],
)
def test_status_classification(status: int, recoverable: bool) -> None:
    assert status_recoverable(status) is recoverable
    exc = HandshakeRejected(status, "body", headers=(("retry-after", "3"),))
    assert exc.recoverable is recoverable
    assert exc.retry_after == 3.0
