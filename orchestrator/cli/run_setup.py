"""The set-up of ``orchestrator run``: the parsed options turned into a :class:`RunSetup`.

Pure set-up: :func:`prepare` validates every option and builds the run's objects (load
model, conversation, server config, restart policy, thresholds, output folder) before any
I/O; it only reads (the scenario files and their audio, whether ``--out`` already holds a
run). Bad input raises :class:`UsageError` naming the option. :func:`make_spec` builds a
session spec of the run for a target once it is known.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import random
import socket
import sys
from pathlib import Path
from typing import Any

import attrs

from orchestrator.audio.voices.engines import engine_available
from orchestrator.audio.voices.layout import default_cache_dir
from orchestrator.cli.mix import (
    MixError,
    ScenarioMix,
    merged_server_hints,
    mix_of,
    parse_mix_arg,
)
from orchestrator.cli.options import (
    SERVER_OPTIONS,
    ServerOptionError,
    build_server_config,
    given_server_options,
    server_values,
    typed_as,
)
from orchestrator.cli.target_process import (
    GROUNDTRUTH_FILE,
    SERVER_LOG_FILE,
    SERVER_PREFIX,
    EmbeddedTarget,
    groundtruth_paths,
)
from orchestrator.cli.voice_options import (
    cache_from_args,
    given_voice_options,
    line_from_args,
    variation_from_args,
)
from orchestrator.metrics import (
    parse_threshold,
)
from orchestrator.metrics.prices import PriceFileError, PriceTable, builtin_prices, load_prices
from orchestrator.metrics.thresholds import parse_tag
from orchestrator.mockserver import ConfigError, ServerConfig
from orchestrator.protocol.dialect import Dialect
from orchestrator.scenario import (
    BuiltinConversation,
    ScenarioDriver,
    ScenarioError,
    ScenarioFailed,
    load_scenario,
    voice_session_config,
)
from orchestrator.scenario.transcription import transcription_session_config
from orchestrator.session.spec import PacingSpec, SessionSpec
from orchestrator.supervisor import (
    Backoff,
    CircuitBreaker,
    ClosedModel,
    OpenModel,
    RestartIntensity,
    RestartPolicy,
    RestartType,
    ValidityLimits,
)
from orchestrator.supervisor.live_thresholds import (
    abort_thresholds,
)
from orchestrator.supervisor.outputs import RESULTS_FILE
from orchestrator.transport import API_KEY_ENV

__all__ = [
    "DEFAULT_MODEL",
    "EXPECTATION_FAILURE",
    "RunSetup",
    "UsageError",
    "build_target",
    "make_spec",
    "prepare",
]

#: The failure type of a session whose conversation did not go as scripted (an
#: expectation, no answer, no greeting): ``--fail-on-expectations`` exits 3 on it.
EXPECTATION_FAILURE = ScenarioFailed.__name__

DEFAULT_MODEL = "gpt-realtime"


class UsageError(ValueError):
    """A bad combination or value of ``run`` options (the message names the option)."""


@attrs.define(eq=False)
class RunSetup:
    """Everything ``run`` needs, validated: built by :func:`prepare` before any I/O."""

    model: ClosedModel | OpenModel
    conversation: BuiltinConversation | ScenarioDriver | ScenarioMix
    target_kwargs: dict[str, Any]
    server_config: ServerConfig | None  # the embedded server's, None with --url
    restart: RestartPolicy
    breaker: CircuitBreaker | None
    thresholds: list[str]
    out_dir: Path
    config: dict[str, Any]
    validity_limits: ValidityLimits
    seed: int
    aborted: dict[str, Any] | None = None
    """Set when an ``:abort`` threshold stopped the run (the ``run_abort`` line)."""
    metrics_port: int | None = None
    """The port ``--metrics-port`` was served on (known once the run started)."""
    target: EmbeddedTarget | None = None
    """How the embedded server runs and where its ground truth goes (``None``: --url)."""
    prices: PriceTable | None = None
    """The price table for the cost estimate (``None``: the built-in one)."""
    tags: dict[str, str] = attrs.field(factory=dict)
    """The run's user tags (``--tag NAME=VALUE``), added to every record."""


def _load_model(args: argparse.Namespace) -> ClosedModel | OpenModel:
    if args.rate is not None:
        for flag, value in (("--concurrency", args.concurrency), ("--ramp-up", args.ramp_up)):
            if value:
                raise UsageError(
                    f"{flag} is for the closed model; with --rate use --max-concurrency"
                )
        duration = args.duration
        if duration is None:
            if args.sessions is None or args.rate_to is not None or args.rate == 0:
                raise UsageError("--rate needs --duration S (or --sessions N at a constant rate)")
            duration = args.sessions / args.rate
        return OpenModel(
            rate=args.rate,
            duration_s=duration,
            rate_to=args.rate_to,
            ramp_s=args.ramp,
            poisson=args.poisson,
            seed=args.seed if args.seed >= 0 else 0,
            max_concurrency=args.max_concurrency,
            sessions=args.sessions,
        )
    for flag, value in (
        ("--rate-to", args.rate_to),
        ("--ramp", args.ramp),
        ("--poisson", args.poisson or None),
        ("--max-concurrency", args.max_concurrency),
    ):
        if value is not None:
            raise UsageError(f"{flag} needs the open model (--rate R)")
    concurrency = args.concurrency or 10
    sessions = args.sessions
    if sessions is None and args.duration is None:
        sessions = concurrency
    return ClosedModel(
        concurrency=concurrency,
        ramp_up_s=args.ramp_up,
        sessions=sessions,
        duration_s=args.duration,
    )


def _server_config(args: argparse.Namespace) -> ServerConfig:
    """The embedded server's config from the ``--server-*`` options (``serve``'s options;
    an option not given keeps the server's default; stalls as ``serve``'s, see
    :func:`build_server_config`). Run-specific: the seed defaults to ``--seed``."""
    try:
        values = server_values(args, SERVER_PREFIX)
    except ServerOptionError as exc:
        raise UsageError(str(exc)) from None
    values.setdefault("seed", args.seed)
    try:
        # the embedded server hears the lines the run's callers say (their voice cache)
        hearing_dir = Path(getattr(args, "voice_cache", None) or default_cache_dir())
        return build_server_config(
            values, host="127.0.0.1", port=0, default_model=args.model, hearing_dir=hearing_dir
        )
    except (ConfigError, ValueError) as exc:
        raise UsageError(f"{_option_of(args, str(exc))}: {exc}") from None


def _option_of(args: argparse.Namespace, message: str) -> str:
    """The ``--server-*`` option (as typed) whose server field ``message`` is about."""
    for opt in SERVER_OPTIONS:
        field = opt.field.rpartition(".")[2]
        if message.startswith(field + " "):
            return typed_as(args, SERVER_PREFIX, opt.name) or f"--{SERVER_PREFIX}{opt.name}"
    return "embedded server options"


def _scenario_args(args: argparse.Namespace) -> list[str]:
    """The SCENARIO arguments; none, or ``builtin`` alone, is the built-in conversation."""
    given = list(getattr(args, "scenarios", None) or [])
    if given == ["builtin"]:
        return []
    if "builtin" in given:
        raise UsageError("'builtin' cannot be mixed with scenario files: give only files to mix")
    return given


def _load_scenarios(args: argparse.Namespace, given: list[str]) -> ScenarioDriver | ScenarioMix:
    """Load and check the SCENARIO file(s) (their audio included) into the driver: one
    file's, or the :class:`ScenarioMix` of several. Every problem of every file in one
    :class:`UsageError`."""
    files = " ".join(given)
    for flag, value in (("--voice", args.voice), ("--instructions", args.instructions)):
        if value is not None:
            raise UsageError(
                f"{flag} is for the built-in conversation; set it in [session] of the "
                f"scenario file {files}"
            )
    for flag in ("--speak", "--audio"):
        if getattr(args, flag[2:]) is not None:
            raise UsageError(
                f"{flag} is for the built-in conversation; a scenario file says what its "
                f"caller says in [[turns]] ({files})"
            )
    voice_given = given_voice_options(args)
    if voice_given:
        raise UsageError(
            f"{', '.join(voice_given)}: for the built-in conversation; set caller voices in "
            f"[voices] of the scenario file {files}"
        )
    try:
        entries = [parse_mix_arg(text) for text in given]
    except MixError as exc:
        raise UsageError(str(exc)) from None
    cache = cache_from_args(args)
    drivers: list[ScenarioDriver] = []
    problems: list[str] = []
    for entry in entries:
        try:
            drivers.append(ScenarioDriver(load_scenario(entry.path), cache=cache))
        except ScenarioError as exc:
            folder = Path(entry.path).is_dir()
            hint = f" ('orchestrator test {entry.path}' runs a folder)" if folder else ""
            problems.append(f"{exc}{hint}")
    if problems:
        raise UsageError("\n".join(problems))
    if len(drivers) == 1:  # one file: its weight does not matter
        return drivers[0]
    try:
        return mix_of(entries, drivers, seed=args.seed)
    except MixError as exc:
        raise UsageError(str(exc)) from None


def _builtin(args: argparse.Namespace) -> BuiltinConversation:
    """The built-in conversation of the options: ``--speak`` (checked: the engine is
    there), ``--audio`` or speech-like sound."""
    given = given_voice_options(args)
    if args.speak is None and given:
        raise UsageError(f"{_needs(given)} --speak TEXT")
    if args.speak is not None and args.audio is not None:
        raise UsageError("--speak and --audio are two questions: give one")
    if args.speak is not None and not args.speak.strip():
        raise UsageError("--speak: the text is empty")
    speak = None
    if args.speak is not None:
        speak = line_from_args(args, args.speak)
        missing = engine_available(speak.engine)
        if missing is not None:
            raise UsageError(f"--speak: {missing}")
    if args.audio is not None and not Path(args.audio).is_file():
        raise UsageError(f"--audio {args.audio}: file not found")
    if args.voice_variants is not None and not 1 <= args.voice_variants <= 1024:
        raise UsageError(f"--voice-variants must be in [1, 1024], got {args.voice_variants}")
    try:
        variation = variation_from_args(args, args.seed, prefix="voice-")
        return BuiltinConversation(
            speech_ms=args.speech_ms,
            lead_ms=args.lead_ms,
            tail_ms=args.tail_ms,
            seed=args.seed,
            linger_ms=args.linger_ms,
            speak=speak,
            variation=variation,
            variants=32 if args.voice_variants is None else args.voice_variants,
            audio=args.audio,
            cache=cache_from_args(args),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _with_scenario_hints(
    config: ServerConfig, scenario: ScenarioDriver | ScenarioMix
) -> ServerConfig:
    """The embedded server's config with the ``[server]`` hints of the scenario(s) (merged
    as :func:`~orchestrator.cli.mix.merged_server_hints` says); ``--server-*`` options
    given on the command line come first (tool rules) or win (transcripts, greeting)."""
    drivers = scenario.drivers if isinstance(scenario, ScenarioMix) else (scenario,)
    try:
        rules, transcripts, greeting = merged_server_hints(
            [(d.scenario.origin, d.server_hints()) for d in drivers]
        )
    except MixError as exc:
        raise UsageError(str(exc)) from None
    return attrs.evolve(
        config,
        tool_rules=config.tool_rules + rules,
        spoken_transcripts=transcripts or config.spoken_transcripts,
        greeting=config.greeting or greeting,
    )


def _needs(options: list[str]) -> str:
    """``"--provider needs"``, ``"--provider, --deployment need"``."""
    return f"{', '.join(options)} {'needs' if len(options) == 1 else 'need'}"


def _default_out() -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / stamp
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{stamp}-{n}")
    return path


def prepare(args: argparse.Namespace, env: dict[str, str] | None = None) -> RunSetup:
    """Validate every option and build the run's objects; nothing started, nothing
    written (it only reads: the scenario file and its audio, whether ``--out`` already
    holds a run).

    Raises :class:`UsageError` (naming the option), ``ThresholdError`` or ``PlanError``.
    """
    env = dict(os.environ) if env is None else env
    given = _scenario_args(args)
    scenario = _load_scenarios(args, given) if given else None
    thresholds = list(args.threshold)
    for expr in thresholds:
        parse_threshold(expr)  # ThresholdError names the expression
    abort_thresholds(thresholds)  # ':abort' only on metrics known during the run
    try:
        tags = dict(parse_tag(text) for text in args.tag)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.metrics_port is not None and args.metrics_port > 65535:
        raise UsageError(f"--metrics-port {args.metrics_port}: a TCP port is 0..65535")
    model = _load_model(args)
    conversation = scenario or _builtin(args)
    dialect = Dialect(args.dialect)
    server_config: ServerConfig | None = None
    target_kwargs: dict[str, Any] = {"model": args.model, "dialect": dialect}
    if args.url is None:
        given = [f"--{n.replace('_', '-')}" for n in ("provider", "deployment", "api_version",
                                                      "api_key_env") if getattr(args, n)]  # fmt: skip
        if given:
            raise UsageError(f"{_needs(given)} --url (the default target is embedded)")
        server_config = _server_config(args)
        if not conversation.speaks:
            # Nothing for it to hear: spare the server the per-turn matching (a few ms
            # per committed turn on its event loop, which stack up under load).
            server_config = attrs.evolve(server_config, hearing_dir=None)
        if scenario is not None:
            server_config = _with_scenario_hints(server_config, scenario)
        if args.server_in_process and args.server_processes is not None:
            raise UsageError("--server-in-process and --server-processes exclude each other")
    else:
        given = given_server_options(args, SERVER_PREFIX)
        given += [flag for flag, on in (("--server-in-process", args.server_in_process),
                                        ("--server-processes", args.server_processes))
                  if on]  # fmt: skip
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise UsageError(f"{', '.join(given)} only {verb} to the embedded server (no --url)")
        provider = args.provider or "custom"
        key = None
        if args.api_key_env:
            key = env.get(args.api_key_env)
            if not key:
                raise UsageError(f"--api-key-env {args.api_key_env}: that variable is not set")
        elif provider != "custom" and not env.get(API_KEY_ENV[provider]):
            raise UsageError(
                f"--provider {provider} needs an API key: set {API_KEY_ENV[provider]}, or "
                "name the variable holding it with --api-key-env NAME"
            )
        target_kwargs.update(
            url=args.url,
            provider=provider,
            deployment=args.deployment,
            api_version=args.api_version,
            api_key=key,
        )
        build_target(target_kwargs, env)  # validate now (URL, key presence)
    try:
        restart = RestartPolicy(
            restart_type=RestartType(args.restart),
            intensity=RestartIntensity(args.max_restarts, args.restart_window_s),
            backoff=Backoff(rng=random.Random(args.seed)),
        )
        breaker = (
            None
            if args.no_breaker
            else CircuitBreaker(
                failure_threshold=min(args.breaker_threshold, 0.999),
                window_s=10.0,
                min_samples=20,
                cooldown_s=5.0,
            )
        )
        limits = ValidityLimits(
            loop_lag_p99_ms=args.loop_lag_limit_ms,
            pacer_p99_ms=args.pacer_limit_ms,
            target_send_p99_ms=args.target_lateness_limit_ms,
        )
        if args.drop_after_ms is not None and args.drop_after_ms < args.late_after_ms:
            raise UsageError("--drop-after-ms must be >= --late-after-ms")
    except ValueError as exc:
        if isinstance(exc, UsageError):
            raise
        raise UsageError(str(exc)) from None
    prices = None
    if args.prices is not None:
        try:
            prices = builtin_prices().merged(load_prices(args.prices))
        except PriceFileError as exc:
            raise UsageError(f"--prices: {exc}") from None
    out_dir = Path(args.out) if args.out else _default_out()
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: a file, not a directory")
    if args.out and not args.overwrite and (out_dir / RESULTS_FILE).exists():
        raise UsageError(
            f"--out {out_dir}: already holds the results of a run ({RESULTS_FILE}); "
            "choose another directory or pass --overwrite to replace them"
        )
    config = {
        "scenario": conversation.name,
        "scenario_file": _scenario_file(scenario),
        "scenarios": _describe_mix(scenario),
        "url": args.url or "embedded",
        "provider": target_kwargs.get("provider", "embedded"),
        "dialect": dialect.value,
        "model": args.model,
        "api_key_env": args.api_key_env,
        "tags": tags,
        "load": _describe_model(model),
        "conversation": {
            "speak": args.speak,
            "audio": args.audio,
            "caller_voice": None if args.speak is None else _describe_voice(args),
            "speech_ms": args.speech_ms,
            "lead_ms": args.lead_ms,
            "tail_ms": args.tail_ms,
            "voice": args.voice,
            "vad_silence_ms": args.vad_silence_ms,
            "realtime_factor": args.realtime_factor,
            "chunk_ms": args.chunk_ms,
            "linger_ms": args.linger_ms,
            "max_session_s": args.max_session_s,
        },
        "restart": {
            "type": args.restart,
            "max_restarts": args.max_restarts,
            "window_s": args.restart_window_s,
        },
        "breaker": None if breaker is None else {"failure_threshold": breaker.failure_threshold},
        "late_after_ms": args.late_after_ms,
        "drop_after_ms": args.drop_after_ms,
        "thresholds": thresholds,
        "abort_grace_s": args.abort_grace_s,
        "abort_window_s": args.abort_window_s,
        "seed": args.seed,
        "server": _describe_server(server_config),
        "prices": args.prices,
    }
    target = None
    if server_config is not None:
        processes = (
            1
            if args.server_in_process
            else args.server_processes or server_processes_for_load(model, usable_cpus())
        )
        first = server_config.groundtruth_path or out_dir / GROUNDTRUTH_FILE
        target = EmbeddedTarget(
            in_process=args.server_in_process,
            processes=processes,
            groundtruth=groundtruth_paths(first, processes),
            log=out_dir / SERVER_LOG_FILE,
        )
        server_config = attrs.evolve(server_config, groundtruth_path=first)
        config["server"]["process"] = "in-process" if target.in_process else processes
    return RunSetup(
        target=target,
        model=model,
        conversation=conversation,
        target_kwargs=target_kwargs,
        server_config=server_config,
        restart=restart,
        breaker=breaker,
        thresholds=thresholds,
        out_dir=out_dir,
        config=config,
        validity_limits=limits,
        seed=args.seed,
        prices=prices,
        tags=tags,
    )


def build_target(kwargs: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    from orchestrator.transport import build_target

    try:
        return build_target(**kwargs, env=os.environ if env is None else env)
    except ValueError as exc:
        raise UsageError(f"--url: {exc}") from None


def _scenario_file(scenario: ScenarioDriver | ScenarioMix | None) -> str | None:
    """The one scenario file of the run (None: built-in or a mix, see ``scenarios``)."""
    return scenario.scenario.origin if isinstance(scenario, ScenarioDriver) else None


def _describe_mix(scenario: ScenarioDriver | ScenarioMix | None) -> list[dict[str, Any]] | None:
    """Each scenario of a mix: name, file and weight (None: not a mix)."""
    if not isinstance(scenario, ScenarioMix):
        return None
    return [
        {"name": d.name, "file": d.scenario.origin, "weight": w}
        for d, w in zip(scenario.drivers, scenario.weights, strict=True)
    ]


def _describe_voice(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "engine": args.voice_engine or "hibari",
        "voice": args.voice_name,
        "speed": args.voice_speed,
        "speed_range": args.voice_speed_range,
        "noise": args.voice_noise,
        "snr_db": args.voice_snr_db,
        "jitter_ms": args.voice_jitter_ms,
        "telephone": args.voice_telephone,
        "variants": args.voice_variants,
    }


#: Sessions one embedded server process serves while keeping its plan with room to spare:
#: measured on one core (benchmarks/bench_baseline.py --repeat 3), its send lateness p99
#: was 8-11 ms at 50 sessions, 11-68 ms at 100 (the run's validity limit is 50 ms).
SESSIONS_PER_SERVER_PROCESS = 50


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: ``taskset``, a container's cpuset),
    else the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def server_processes_for_load(
    model: ClosedModel | OpenModel, cpus: int, *, generator_cores: int = 1
) -> int:
    """Embedded server processes for a run: one per :data:`SESSIONS_PER_SERVER_PROCESS`
    sessions at once (the closed model's concurrency, or its session count when smaller;
    the open model's ``max_concurrency``; an uncapped open model: one), at most one per
    core beside the ``generator_cores``, at least one; with more than one generator core
    (a fleet's workers) at least one per two of them, as their load is unknown to the
    plan's numbers when they fill the machine (``--workers auto``); always one where the
    kernel does not spread connections over processes sharing a port (``SO_REUSEPORT``
    load-balancing: Linux)."""
    if not (sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")):
        return 1
    if isinstance(model, ClosedModel):
        peak = min(model.concurrency, model.sessions or model.concurrency)
    else:
        peak = model.max_concurrency or 1
    wanted = math.ceil(peak / SESSIONS_PER_SERVER_PROCESS)
    return max(1, min(wanted, cpus - generator_cores), math.ceil(generator_cores / 2))


def _describe_model(model: ClosedModel | OpenModel) -> dict[str, Any]:
    kind = "closed" if isinstance(model, ClosedModel) else "open"
    return {"model": kind, **attrs.asdict(model)}


def _describe_server(config: ServerConfig | None) -> dict[str, Any] | None:
    if config is None:
        return None
    lat, faults = config.latency, config.faults
    return {
        "seed": config.seed,
        "first_delta_ms": str(lat.first_delta_ms),
        "response_created_ms": str(lat.response_created_ms),
        "response_words": str(lat.response_words),
        "realtime_factor": lat.realtime_factor,
        "leading_silence_ms": str(lat.leading_silence_ms),
        "greeting": config.greeting,
        "hearing_dir": None if config.hearing_dir is None else str(config.hearing_dir),
        "faults": attrs.asdict(faults),
    }


def make_spec(
    setup: RunSetup,
    target: Any,
    args: argparse.Namespace,
    conversation: BuiltinConversation | ScenarioDriver | None = None,
) -> SessionSpec:
    """The base session spec of the run for ``target``: of ``conversation`` (one scenario
    of a mix), else of the run's conversation (not a mix)."""
    if conversation is None:
        assert not isinstance(setup.conversation, ScenarioMix)
        conversation = setup.conversation
    if isinstance(conversation, ScenarioDriver):
        config, tools = conversation.session_config(), conversation.tool_registry()
    elif args.mode == "transcription":
        config, tools = transcription_session_config(vad_silence_ms=args.vad_silence_ms), None
    else:
        config = voice_session_config(
            voice=args.voice, vad_silence_ms=args.vad_silence_ms, instructions=args.instructions
        )
        tools = None
    return SessionSpec(
        target=target,
        config=config,
        tools=tools,
        pacing=PacingSpec(chunk_ms=args.chunk_ms, realtime_factor=args.realtime_factor),
        max_duration=args.max_session_s,
        label=conversation.name,
        tags=conversation.tags,
        seed=setup.seed,
    )
