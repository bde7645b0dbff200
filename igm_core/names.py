"""Names a spec may use (modalities, the spec's own name): patterns shared by the catalog, the
data loaders and the service, each with the words that describe it in an error message.

Imports nothing of igm_core, so any module can use it without creating an import cycle.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

# pattern -> what it asks for, in words; an error shows these instead of the regex
PATTERN_WORDS: dict[str, str] = {}


def named_pattern(pattern: str, words: str) -> str:
    """Record the words that describe `pattern` in error messages; returns the pattern."""
    PATTERN_WORDS[pattern] = words
    return pattern


def pattern_message(pattern: str | None, value: Any) -> str | None:
    """The readable message for `value` not matching `pattern`; None for a pattern without
    words (then the validator's own message stands)."""
    words = PATTERN_WORDS.get(pattern or "")
    if words is None:
        return None
    shown = repr(value[:80]) if isinstance(value, str) else repr(value)
    return f"must be {words}; got {shown}"


MODALITY_NAME = named_pattern(
    r"^[a-z][a-z0-9_]{0,31}$",
    "1-32 lower-case letters, digits or _, starting with a letter (like audio or rgb_2)",
)
SPEC_NAME = named_pattern(
    r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$",
    "letters, digits, spaces and _ . - only, starting with a letter or digit (like igm-tau0.4)",
)
ModalityName = Annotated[str, Field(pattern=MODALITY_NAME)]
