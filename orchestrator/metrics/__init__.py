"""metrics layer: ``results.jsonl`` records, statistics, thresholds and reports.

Imports nothing from session/supervisor/cli/mockserver. Modules:

- ``records``: ``TurnRecord``, ``SessionResult``, ``ToolCallRecord``, ``ErrorRecord``,
  ``TimelinePoint``; ``to_json_line``, ``append_jsonl``, ``parse_results``, ``read_results``
- ``stats``: ``summarize``/``MetricSummary``, ``RollingWindow``, ``LiveStats``
- ``thresholds``: k6-style ``parse_threshold``/``evaluate``/``evaluate_summary``
- ``summary``: ``build_summary`` (``summary.json``), ``summary_csv``, ``redact_config``, cost
- ``report_html``: ``render_report`` (offline HTML with inline SVG); ``svg``: chart helpers
- ``compare``: ``compare``/``config_diff`` (``compare_noise``, ``compare_gates``,
  ``compare_render``: noise model, regression gates, output); ``text``: ``summary_text``,
  ``all_failed_warning``
"""

from orchestrator.metrics.compare import CompareRow, compare
from orchestrator.metrics.records import (
    ErrorRecord,
    ResultsFile,
    ResultsFormatError,
    SessionResult,
    TimelinePoint,
    ToolCallRecord,
    TurnRecord,
    append_jsonl,
    parse_results,
    read_results,
    to_json_line,
)
from orchestrator.metrics.report_html import render_report
from orchestrator.metrics.stats import LiveStats, MetricSummary, RollingWindow, summarize
from orchestrator.metrics.summary import Validity, build_summary, redact_config, summary_csv
from orchestrator.metrics.text import all_failed_warning, summary_text
from orchestrator.metrics.thresholds import (
    Threshold,
    ThresholdError,
    ThresholdResult,
    evaluate,
    evaluate_summary,
    parse_threshold,
)

__all__ = [
    "all_failed_warning",
    "CompareRow",
    "ErrorRecord",
    "LiveStats",
    "MetricSummary",
    "ResultsFile",
    "ResultsFormatError",
    "RollingWindow",
    "SessionResult",
    "Threshold",
    "ThresholdError",
    "ThresholdResult",
    "TimelinePoint",
    "ToolCallRecord",
    "TurnRecord",
    "Validity",
    "append_jsonl",
    "build_summary",
    "compare",
    "evaluate",
    "evaluate_summary",
    "parse_results",
    "parse_threshold",
    "read_results",
    "redact_config",
    "render_report",
    "summarize",
    "summary_csv",
    "summary_text",
    "to_json_line",
]
