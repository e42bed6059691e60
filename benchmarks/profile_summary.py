"""Summarise a py-spy profile in collapsed-stack form (``py-spy record --format raw``, as
``bench_baseline.py --profile DIR`` writes): where the samples' own time goes, by layer and
by frame, and the inclusive share of this project's functions.

Usage::

    python benchmarks/profile_summary.py /tmp/prof/client_orchestrator_200.txt
    python benchmarks/profile_summary.py /tmp/prof/server0_gt_orchestrator_200.txt --top 30

Layers are told from a frame's file path: ``orchestrator/<layer>/`` (this project),
``trio``, ``trio_websocket``, ``wsproto``, ``h11``, ``attrs``/``cattrs``, ``orjson`` and
the standard library; a sample counts for the layer of its innermost Python frame
(py-spy shows native calls such as ``socket.send`` as their Python caller).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_LAYERS = (
    ("trio_websocket", "trio-websocket"),
    ("wsproto", "wsproto"),
    ("h11", "h11"),
    ("trio", "trio"),
    ("cattrs", "attrs/cattrs"),
    ("attr", "attrs/cattrs"),
    ("numpy", "numpy"),
)


def layer(path: str) -> str:
    """The layer a source file belongs to (``orchestrator.<sub>`` for this project)."""
    parts = path.replace("\\", "/").split("/")
    if "site-packages" in parts:  # an installed package (a venv inside a checkout too)
        parts = parts[parts.index("site-packages") + 1 :]
        for prefix, name in _LAYERS:
            if parts[0] == prefix or parts[0].startswith(prefix + "-"):
                return name
        if parts[0] != "orchestrator":
            return parts[0].split(".")[0]
    if "orchestrator" in parts:
        i = len(parts) - 1 - parts[::-1].index("orchestrator")
        sub = parts[i + 1] if i + 2 < len(parts) else ""
        return f"orchestrator.{sub}" if sub else "orchestrator"
    for part in parts:
        for prefix, name in _LAYERS:
            if part == prefix or part.startswith(prefix + "-"):
                return name
    return "python stdlib" if path.endswith(".py") else "native"


def parse(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    """``[(frames outermost first as (function, file:line), count)]`` of a raw profile."""
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            continue
        frames = []
        for frame in body.split(";"):
            m = _FRAME.match(frame.strip())
            if m is None:
                continue
            where = m["file"] + (f":{m['line']}" if m["line"] else "")
            frames.append((m["func"], where))
        if frames:
            stacks.append((frames, int(count)))
    return stacks


def summarise(stacks: list[tuple[list[tuple[str, str]], int]], top: int) -> str:
    """The printed summary: own time by layer, own time by frame, inclusive time of this
    project's functions (each counted once per sample)."""
    total = sum(c for _, c in stacks) or 1
    by_layer: Counter[str] = Counter()
    by_frame: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        func, where = frames[-1]
        by_layer[layer(where.rsplit(":", 1)[0])] += count
        by_frame[f"{func} ({_short(where)})"] += count
        seen = set()
        for func, where in frames:
            file = where.rsplit(":", 1)[0]
            if layer(file).startswith("orchestrator"):
                key = f"{func} ({_short(file)})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += count
    lines = [f"{total} samples"]
    lines.append("own time by layer:")
    lines += [f"  {100 * c / total:5.1f} %  {name}" for name, c in by_layer.most_common()]
    lines.append(f"own time, top {top} frames:")
    lines += [f"  {100 * c / total:5.1f} %  {name}" for name, c in by_frame.most_common(top)]
    lines.append(f"inclusive time of this project's functions, top {top}:")
    lines += [f"  {100 * c / total:5.1f} %  {name}" for name, c in inclusive.most_common(top)]
    return "\n".join(lines)


def _short(path: str) -> str:
    """A file path from its package on (``trio/_core/_run.py``), not the install prefix."""
    parts = path.replace("\\", "/").split("/")
    for marker in ("site-packages", "orchestrator"):
        if marker in parts:
            i = len(parts) - 1 - parts[::-1].index(marker)
            return "/".join(parts[i + 1 :] if marker == "site-packages" else parts[i:])
    return "/".join(parts[-2:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("profiles", nargs="+", type=Path, help="raw py-spy profiles")
    parser.add_argument("--top", type=int, default=20, help="frames listed (20)")
    args = parser.parse_args(argv)
    for path in args.profiles:
        if not path.is_file():
            parser.error(f"{path}: no such file")
        print(f"== {path}")
        print(summarise(parse(path), args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
