"""Errors the server reports to clients, shaped like the real service's ``error`` events.

Pure logic raises :class:`ClientError`; the connection actor turns it into an
``error`` event (PROTOCOL_NOTES §1) and keeps the connection open.
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """A client event was refused: becomes ``{"type":"error","error":{...}}``.

    ``code`` / ``param`` may be ``None`` as on the real service. ``event_id`` is
    filled in by the actor from the offending client event.
    """

    def __init__(
        self,
        code: str | None,
        message: str,
        param: str | None = None,
        *,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.type = type

    def to_event(self, client_event_id: str | None) -> dict[str, Any]:
        """The GA ``error`` event answering the client event ``client_event_id``."""
        return error_event(self.type, self.code, self.message, self.param, client_event_id)


def error_event(
    type: str,
    code: str | None,
    message: str,
    param: str | None = None,
    client_event_id: str | None = None,
) -> dict[str, Any]:
    """A GA-shaped ``error`` event (its own ``event_id`` is added when it is sent)."""
    return {
        "type": "error",
        "error": {
            "type": type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    }


def unknown_parameter(param: str) -> ClientError:
    return ClientError("unknown_parameter", f"Unknown parameter: '{param}'.", param)


def missing_parameter(param: str) -> ClientError:
    return ClientError(
        "missing_required_parameter", f"Missing required parameter: '{param}'.", param
    )


_JSON_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def json_type_name(value: object) -> str:
    """How the real service names a JSON value's type in messages."""
    return _JSON_TYPE_NAMES.get(type(value), "an unknown type")


def invalid_type(param: str, expected: str, value: object) -> ClientError:
    return ClientError(
        "invalid_type",
        f"Invalid type for '{param}': expected {expected}, but got {json_type_name(value)} instead.",
        param,
    )


def invalid_value(
    param: str, value: object, supported: tuple[str, ...] | None = None
) -> ClientError:
    shown = value if isinstance(value, str | int | float) else json_type_name(value)
    message = f"Invalid value: '{shown}'."
    if supported:
        quoted = [f"'{s}'" for s in supported]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
        message += f" Supported values are: {listed}."
    return ClientError("invalid_value", message, param)


def below_min(param: str, minimum: float, value: object) -> ClientError:
    return _out_of_range(param, minimum, value, "below_min", "below minimum", ">=")


def above_max(param: str, maximum: float, value: object) -> ClientError:
    return _out_of_range(param, maximum, value, "above_max", "above maximum", "<=")


def _out_of_range(
    param: str, bound: float, value: object, code: str, words: str, op: str
) -> ClientError:
    kind = "integer" if isinstance(bound, int) else "decimal"
    return ClientError(
        f"{kind}_{code}_value",
        f"Invalid '{param}': {kind} {words} value. Expected a value {op} {bound}, "
        f"but got {value} instead.",
        param,
    )
