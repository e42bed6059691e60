"""Tiny inline-SVG chart helpers for the offline HTML report (no JS, no external files).

Every chart is a standalone ``<svg>`` string with axes, ticks, a title and a legend.
All text goes through :func:`esc`. Point-heavy layers are thinned to a bounded number of
SVG elements so a 100k-turn run still yields a report of reasonable size.
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Callable, Sequence

import attrs
import numpy as np

__all__ = [
    "PALETTE",
    "Series",
    "bar_chart",
    "cdf_chart",
    "esc",
    "histogram_chart",
    "line_chart",
    "nice_ticks",
]

PALETTE: tuple[str, ...] = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")
WIDTH, HEIGHT = 560, 260
_ML, _MR, _MT, _MB = 60, 16, 30, 42
MAX_POINTS = 3000


def esc(text: object) -> str:
    """HTML/XML-escape ``text`` (quotes included)."""
    return html.escape(str(text), quote=True)


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]`` (steps of 1, 2 or 5 x 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    k = 0
    while first + k * step <= hi + step * 1e-9:
        ticks.append(round(first + k * step, 12))
        k += 1
    return ticks


def _tick_label(v: float) -> str:
    if abs(v) >= 10000:
        return f"{v:.3g}"
    return f"{v:g}" if v == int(v) else f"{v:.3g}"


@attrs.frozen(kw_only=True)
class Series:
    """A named set of points; ``xs`` and ``ys`` have the same length."""

    name: str
    xs: Sequence[float] | np.ndarray
    ys: Sequence[float] | np.ndarray
    color: str | None = None


Scale = Callable[[float], float]
Layer = Callable[[Scale, Scale], str]
"""Draws one layer given the x and y scales (data -> pixel)."""


def _padded(lo: float, hi: float, *, zero: bool) -> tuple[float, float]:
    if zero:
        lo = min(lo, 0.0)
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    return lo, hi


def _frame(
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_domain: tuple[float, float],
    y_domain: tuple[float, float],
    layers: Sequence[Layer],
    legend: Sequence[tuple[str, str]] = (),
    note: str | None = None,
) -> str:
    x0, x1 = x_domain
    y0, y1 = y_domain
    pw, ph = WIDTH - _ML - _MR, HEIGHT - _MT - _MB
    placed, legend_rows = _legend_layout(legend, pw)
    top = _MT + _LEGEND_ROW * legend_rows
    height = HEIGHT + _LEGEND_ROW * legend_rows

    def sx(x: float) -> float:
        return _ML + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    parts = [
        f'<svg class="chart" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{esc(title)}">',
        f"<title>{esc(title)}</title>",
        f'<text x="{_ML}" y="18" class="t">{esc(title)}</text>',
        f'<rect x="{_ML}" y="{top}" width="{pw}" height="{ph}" class="plot"/>',
    ]
    for v in nice_ticks(x0, x1):
        x = _num(sx(v))
        parts.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{top + ph}" class="g"/>')
        parts.append(f'<text x="{x}" y="{top + ph + 14}" class="xt">{esc(_tick_label(v))}</text>')
    for v in nice_ticks(y0, y1):
        y = _num(sy(v))
        parts.append(f'<line x1="{_ML}" y1="{y}" x2="{_ML + pw}" y2="{y}" class="g"/>')
        parts.append(f'<text x="{_ML - 4}" y="{y}" class="yt">{esc(_tick_label(v))}</text>')
    parts.append(f'<text x="{_ML + pw / 2:.0f}" y="{height - 6}" class="xl">{esc(x_label)}</text>')
    parts.append(
        f'<text x="12" y="{top + ph / 2:.0f}" class="yl" '
        f'transform="rotate(-90 12 {top + ph / 2:.0f})">{esc(y_label)}</text>'
    )
    parts.extend(layer(sx, sy) for layer in layers)
    for (name, color), (lx, row) in zip(legend, placed, strict=True):
        ly = _MT + _LEGEND_ROW * row - 4
        parts.append(f'<rect x="{lx}" y="{ly - 8}" width="10" height="10" fill="{esc(color)}"/>')
        parts.append(f'<text x="{lx + 14}" y="{ly + 1}" class="lg">{esc(name)}</text>')
    if note:
        parts.append(f'<text x="{_ML + pw}" y="18" class="nt">{esc(note)}</text>')
    parts.append("</svg>")
    return "".join(parts)


#: Height of one legend row; legends sit in rows between the title and the plot, so
#: they never cover data (the chart grows by one row per legend row).
_LEGEND_ROW = 14
_LEGEND_CHAR_PX = 6.5


def _legend_layout(
    legend: Sequence[tuple[str, str]], width: float
) -> tuple[list[tuple[int, int]], int]:
    """``(x, row)`` of each legend entry, left to right, wrapping at ``width``; and the
    number of rows (0 without a legend)."""
    placed: list[tuple[int, int]] = []
    x, row = 0.0, 1
    for name, _ in legend:
        w = 14 + _LEGEND_CHAR_PX * len(name) + 12
        if x and x + w > width:
            x, row = 0.0, row + 1
        placed.append((round(_ML + x), row))
        x += w
    return placed, (row if legend else 0)


def empty_chart(title: str, message: str = "no data") -> str:
    """A chart-sized ``<svg>`` saying ``message``."""
    return (
        f'<svg class="chart" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{esc(title)}">'
        f"<title>{esc(title)}</title>"
        f'<text x="{_ML}" y="18" class="t">{esc(title)}</text>'
        f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" class="empty">{esc(message)}</text></svg>'
    )


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return arr[np.isfinite(arr)]


def histogram_chart(
    values: Sequence[float] | np.ndarray, *, title: str, x_label: str, bins: int | None = None
) -> str:
    """Histogram of ``values`` (count per bin); ``bins`` defaults to ~sqrt(n), 5..40."""
    arr = _finite(values)
    if arr.size == 0:
        return empty_chart(title)
    nbins = bins or int(min(40, max(5, math.isqrt(arr.size))))
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(arr, bins=nbins, range=(lo, hi))

    def layer(sx: Scale, sy: Scale) -> str:
        out = []
        for c, a, b in zip(counts, edges[:-1], edges[1:], strict=True):
            if c == 0:
                continue
            x, y = sx(a), sy(float(c))
            w = max(sx(b) - x - 1, 1)
            out.append(
                f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" '
                f'height="{_num(sy(0) - y)}" fill="{PALETTE[0]}"><title>'
                f"{esc(_tick_label(a))}–{esc(_tick_label(b))}: {int(c)}</title></rect>"
            )
        return "".join(out)

    return _frame(
        title=title,
        x_label=x_label,
        y_label="count",
        x_domain=(lo, hi),
        y_domain=(0.0, float(counts.max()) * 1.05),
        layers=[layer],
        note=f"n={arr.size}",
    )


def _polyline(
    sx: Scale, sy: Scale, xs: np.ndarray, ys: np.ndarray, *, color: str, step: bool
) -> str:
    """A polyline through the points; ``step``: each value holds until the next x."""
    pts: list[str] = []
    for j, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if step and j:
            pts.append(f"{_num(sx(x))},{_num(sy(ys[j - 1]))}")
        pts.append(f"{_num(sx(x))},{_num(sy(y))}")
    return (
        f'<polyline fill="none" stroke="{esc(color)}" stroke-width="1.8" points="{" ".join(pts)}"/>'
    )


def _dots(sx: Scale, sy: Scale, xs: np.ndarray, ys: np.ndarray, *, color: str) -> str:
    circles = "".join(
        f'<circle cx="{_num(sx(x))}" cy="{_num(sy(y))}" r="2"/>'
        for x, y in zip(xs, ys, strict=True)
    )
    return f'<g fill="{esc(color)}" fill-opacity="0.5">{circles}</g>'


def _thin(n: int) -> np.ndarray:
    """Indices of at most :data:`MAX_POINTS` evenly spaced elements of ``range(n)``."""
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.linspace(0, n - 1, MAX_POINTS).round().astype(np.int64)


def cdf_chart(values: Sequence[float] | np.ndarray, *, title: str, x_label: str) -> str:
    """Empirical CDF of ``values``: fraction of samples <= x (thinned to evenly spaced
    quantiles beyond :data:`MAX_POINTS`)."""
    arr = np.sort(_finite(values))
    if arr.size == 0:
        return empty_chart(title)
    idx = _thin(arr.size)
    xs = np.concatenate(([arr[0]], arr[idx]))
    ys = np.concatenate(([0.0], (idx + 1) / arr.size))
    return _frame(
        title=title,
        x_label=x_label,
        y_label="fraction ≤ x",
        x_domain=_padded(float(arr[0]), float(arr[-1]), zero=False),
        y_domain=(0.0, 1.0),
        layers=[functools.partial(_polyline, xs=xs, ys=ys, color=PALETTE[0], step=True)],
    )


def line_chart(
    *,
    title: str,
    x_label: str,
    y_label: str,
    points: Sequence[Series] = (),
    lines: Sequence[Series] = (),
    step: bool = False,
    zero_y: bool = True,
) -> str:
    """Scatter ``points`` series (thinned to :data:`MAX_POINTS` each, noted) and polyline
    ``lines`` series (``step=True`` draws them as steps: value holds until the next x)."""
    legend: list[tuple[str, str]] = []
    layers: list[Layer] = []
    notes = []
    xs_all: list[np.ndarray] = []
    ys_all: list[np.ndarray] = []
    for i, s in enumerate((*points, *lines)):
        color = s.color or PALETTE[i % len(PALETTE)]
        xs = np.asarray(s.xs, dtype=np.float64)
        ys = np.asarray(s.ys, dtype=np.float64)
        ok = np.isfinite(xs) & np.isfinite(ys)
        xs, ys = xs[ok], ys[ok]
        if xs.size == 0:
            continue
        legend.append((s.name, color))
        xs_all.append(xs)
        ys_all.append(ys)
        if i < len(points):
            keep = _thin(xs.size)
            if keep.size < xs.size:
                notes.append(f"{s.name}: {keep.size} of {xs.size} points shown")
            layers.append(functools.partial(_dots, xs=xs[keep], ys=ys[keep], color=color))
        else:
            layers.append(functools.partial(_polyline, xs=xs, ys=ys, color=color, step=step))
    if not layers:
        return empty_chart(title)
    x0 = min(float(a.min()) for a in xs_all)
    x1 = max(float(a.max()) for a in xs_all)
    y0 = min(float(a.min()) for a in ys_all)
    y1 = max(float(a.max()) for a in ys_all)
    return _frame(
        title=title,
        x_label=x_label,
        y_label=y_label,
        x_domain=_padded(x0, x1, zero=False),
        y_domain=_padded(y0, y1 * 1.05 if y1 > 0 else y1, zero=zero_y),
        layers=layers,
        legend=legend,
        note="; ".join(notes) or None,
    )


def bar_chart(
    *,
    title: str,
    x_label: str,
    y_label: str,
    edges: Sequence[float] | np.ndarray,
    stacks: Sequence[Series],
) -> str:
    """Stacked bars: bin ``k`` spans ``edges[k]..edges[k+1]``; each :class:`Series`
    gives one count per bin in ``ys`` (``xs`` unused)."""
    edges = np.asarray(edges, dtype=np.float64)
    if edges.size < 2 or not stacks:
        return empty_chart(title)
    heights = np.array([np.asarray(s.ys, dtype=np.float64) for s in stacks])
    total = heights.sum(axis=0)
    if not total.any():
        return empty_chart(title, "none")
    colors = [s.color or PALETTE[(i + 1) % len(PALETTE)] for i, s in enumerate(stacks)]

    def layer(sx: Scale, sy: Scale) -> str:
        out = []
        base = np.zeros(total.size)
        for row, color, s in zip(heights, colors, stacks, strict=True):
            for k, h in enumerate(row):
                if h <= 0:
                    continue
                x = sx(edges[k])
                w = max(sx(edges[k + 1]) - x - 1, 1)
                top, bottom = sy(base[k] + h), sy(base[k])
                out.append(
                    f'<rect x="{_num(x)}" y="{_num(top)}" width="{_num(w)}" '
                    f'height="{_num(bottom - top)}" fill="{esc(color)}"><title>'
                    f"{esc(s.name)}: {int(h)}</title></rect>"
                )
            base = base + row
        return "".join(out)

    return _frame(
        title=title,
        x_label=x_label,
        y_label=y_label,
        x_domain=(float(edges[0]), float(edges[-1])),
        y_domain=(0.0, float(total.max()) * 1.1),
        layers=[layer],
        legend=[(s.name, c) for s, c in zip(stacks, colors, strict=True)],
    )
