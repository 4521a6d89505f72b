"""The one ``KEY=VALUE`` parser of gross: command-line settings, benchmark overrides, ``$GROSS_EXECUTOR``."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable

__all__ = ["parse_value", "parse_assignments"]

_NONE_WORDS = ("none", "null", "")


def parse_value(text: str, none_words: bool = False):
    """A value written on a command line.

    TOML syntax first (``3``, ``1e-5``, ``"cpu"``, ``[4, 16]``, ``true``), then a Python
    literal (``True``, ``(1, 2)``), else the text itself as a string (``cpu``).

    Parameters
    ----------
    text : str
    none_words : bool, default False
        Read ``none``, ``null`` and the empty string as ``None`` (TOML has no null).
    """
    text = str(text).strip()
    if none_words and text.lower() in _NONE_WORDS:
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def parse_assignments(items: Iterable[str], example: str = "key=value", none_words: bool = False) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values by :func:`parse_value`), in order.

    Raises
    ------
    ValueError
        An item without ``=`` or with an empty key (names it and shows ``example``).
    """
    out = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r} must look like KEY=VALUE, e.g. {example}")
        out[key.strip()] = parse_value(value, none_words)
    return out
