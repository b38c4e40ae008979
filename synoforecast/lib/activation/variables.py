"""Read an integration's variables (METABASE_*, SMTP_*) into its typed, checked configuration,
one way for every integration: blank means unset, and a malformed value is refused naming the
variable and its value (a secret's value is never parsed, so it is never shown)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_REASONS = {
    "int_parsing": "must be an integer",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
}


def _reason(error: Mapping[str, Any]) -> str:
    limits = error.get("ctx") or {}
    if error["type"] == "greater_than_equal":
        return "must not be negative" if limits.get("ge") == 0 else f"must be at least {limits.get('ge')}"
    if error["type"] == "greater_than":
        return "must be positive" if limits.get("gt") == 0 else f"must be more than {limits.get('gt')}"
    if error["type"] == "less_than_equal":
        return f"must be at most {limits.get('le')}"
    return _REASONS.get(error["type"], error["msg"].removeprefix("Value error, "))


def read_variables(
    model: type[M],
    env: Mapping[str, Any],
    *,
    fields: Iterable[str],
    variable: Callable[[str], str],
    error: type[Exception],
) -> M:
    """``model`` from the variables of ``fields`` found in ``env`` (blank strings = unset; the
    model's field aliases are the variable names); raises ``error`` naming the first bad one.
    Errors the model raises itself as ``error`` (half a configuration) propagate."""
    known = {variable(name) for name in fields}
    given = {
        k: v for k, v in env.items() if k in known and v is not None and not (isinstance(v, str) and not v.strip())
    }
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0])
        raise error(f"{name} {_reason(first)}, got {given.get(name)!r}") from None
