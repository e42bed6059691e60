"""OTP restart policy: restart types, intensity give-up, backoff bounds and jitter."""

from __future__ import annotations

import random

import pytest
import trio

from orchestrator.supervisor.policy import (
    Backoff,
    GiveUp,
    NoRestart,
    Restart,
    RestartHistory,
    RestartIntensity,
    RestartPolicy,
    RestartType,
    decide,
)

NO_JITTER = Backoff(initial_s=1.0, max_s=8.0, multiplier=2.0, jitter="none")
LOOSE = RestartIntensity(max_restarts=100, within_s=60.0)


@pytest.mark.parametrize(
    ("restart_type", "status", "expected"),
    [
        (RestartType.PERMANENT, "completed", Restart),
        (RestartType.PERMANENT, "failed", Restart),
        (RestartType.PERMANENT, "cancelled", NoRestart),
        (RestartType.TRANSIENT, "completed", NoRestart),
        (RestartType.TRANSIENT, "failed", Restart),
        (RestartType.TRANSIENT, "cancelled", NoRestart),
        (RestartType.TEMPORARY, "completed", NoRestart),
        (RestartType.TEMPORARY, "failed", NoRestart),
        (RestartType.TEMPORARY, "cancelled", NoRestart),
    ],
)
def test_restart_types(restart_type: RestartType, status: str, expected: type) -> None:
    decision = decide(
        restart_type, status, RestartHistory(), 0.0, intensity=LOOSE, backoff=NO_JITTER
    )  # type: ignore[arg-type]
    assert isinstance(decision, expected)


def test_restart_type_accepts_its_string_value_and_rejects_unknown_status() -> None:
    d = decide("transient", "failed", RestartHistory(), 0.0, intensity=LOOSE, backoff=NO_JITTER)
    assert d == Restart(delay_s=1.0, attempt=0)
    with pytest.raises(ValueError, match="unknown session status 'crashed'"):
        decide(
            RestartType.PERMANENT,
            "crashed",
            RestartHistory(),
            0.0,
            intensity=LOOSE,
            backoff=NO_JITTER,
        )  # type: ignore[arg-type]


def test_intensity_gives_up_beyond_max_restarts_within_period() -> None:
    policy = RestartPolicy(
        RestartType.PERMANENT, RestartIntensity(max_restarts=3, within_s=10.0), NO_JITTER
    )
    history = RestartHistory()
    decisions = []
    for now in (0.0, 1.0, 2.0, 3.0):
        d = policy.decide("failed", history, now)
        decisions.append(d)
        if isinstance(d, Restart):
            history.record(now, d.delay_s)
    assert decisions[:3] == [Restart(1.0, 0), Restart(2.0, 1), Restart(4.0, 2)]
    assert isinstance(decisions[3], GiveUp)
    assert "3 restarts within 10 s (max 3)" in decisions[3].reason
    # decide() itself never mutates the history.
    assert history.total == 3 and history.times == (0.0, 1.0, 2.0)
    # Restarts age out of the window (0.0 is outside (0.0, 10.0]): allowed again,
    # and the backoff exponent follows the count in the window.
    assert policy.decide("failed", history, 10.0) == Restart(4.0, 2)
    assert policy.decide("failed", history, 12.5) == Restart(1.0, 0)
    assert policy.intensity.allows(history, 12.5)


def test_zero_intensity_never_restarts_and_bad_history_size_is_rejected() -> None:
    d = decide(
        RestartType.PERMANENT,
        "failed",
        RestartHistory(),
        0.0,
        intensity=RestartIntensity(0, 1.0),
        backoff=NO_JITTER,
    )
    assert isinstance(d, GiveUp)
    with pytest.raises(ValueError, match="maxlen"):
        decide(
            RestartType.PERMANENT,
            "failed",
            RestartHistory(maxlen=2),
            0.0,
            intensity=RestartIntensity(5, 1.0),
            backoff=NO_JITTER,
        )


def test_backoff_without_jitter_is_capped_exponential() -> None:
    assert [NO_JITTER.delay(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert NO_JITTER.delay(10_000) == 8.0  # no float overflow for huge attempts
    with pytest.raises(ValueError, match="attempt"):
        NO_JITTER.delay(-1)


@pytest.mark.parametrize("jitter", ["full", "equal"])
def test_full_and_equal_jitter_bounds(jitter: str) -> None:
    b = Backoff(initial_s=0.5, max_s=30.0, multiplier=3.0, jitter=jitter, rng=random.Random(1))  # type: ignore[arg-type]
    for attempt in range(12):
        cap = min(30.0, 0.5 * 3.0**attempt)
        lo = 0.0 if jitter == "full" else cap / 2
        delays = [b.delay(attempt) for _ in range(200)]
        assert all(lo <= d <= cap for d in delays)
        # The draws actually spread over the range (not pinned at an end).
        assert max(delays) - min(delays) > 0.5 * (cap - lo)


def test_decorrelated_jitter_bounds_and_growth() -> None:
    b = Backoff(
        initial_s=1.0, max_s=20.0, multiplier=3.0, jitter="decorrelated", rng=random.Random(5)
    )
    previous = None
    seen = []
    for attempt in range(200):
        d = b.delay(attempt, previous)
        hi = min(20.0, 3.0 * (1.0 if previous is None else previous))
        assert 1.0 <= d <= max(1.0, hi)
        seen.append(d)
        previous = d
    assert max(seen) > 15.0  # it does climb towards the cap


def test_jitter_is_reproducible_from_the_injected_rng() -> None:
    def delays(seed: int) -> list[float]:
        b = Backoff(jitter="full", rng=random.Random(seed))
        return [b.delay(n) for n in range(10)]

    assert delays(42) == delays(42)
    assert delays(42) != delays(43)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"initial_s": -1}, "Backoff.initial_s"),
        ({"initial_s": 5, "max_s": 1}, "Backoff.max_s"),
        ({"multiplier": 0.5}, "Backoff.multiplier"),
        ({"jitter": "sometimes"}, "Backoff.jitter"),
    ],
)
def test_backoff_rejects_bad_parameters(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Backoff(**kwargs)


def test_intensity_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="max_restarts"):
        RestartIntensity(-1, 5.0)
    with pytest.raises(ValueError, match="within_s"):
        RestartIntensity(1, 0.0)


async def test_restart_loop_on_the_mock_clock(autojump_clock: trio.abc.Clock) -> None:
    """A session that always fails 1 s after start: restarts back off 1, 2, 4 s, then the
    intensity (3 in 30 s) gives up — all at exact fake times."""
    policy = RestartPolicy(RestartType.TRANSIENT, RestartIntensity(3, 30.0), NO_JITTER)
    history = RestartHistory()
    starts: list[float] = []
    while True:
        starts.append(trio.current_time())
        await trio.sleep(1.0)  # the session runs, then fails
        now = trio.current_time()
        decision = policy.decide("failed", history, now)
        if not isinstance(decision, Restart):
            break
        history.record(now, decision.delay_s)
        await trio.sleep_until(now + decision.delay_s)
    assert starts == [0.0, 2.0, 5.0, 10.0]
    assert isinstance(decision, GiveUp)
    assert trio.current_time() == 11.0
