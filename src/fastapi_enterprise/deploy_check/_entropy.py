"""How guessable a secret is: an entropy estimate that sees through human-made keys."""

from __future__ import annotations

import math

__all__ = ["estimate_entropy_bits", "weak_secret"]

# Values that tutorials and templates ship; a key equal to one of them, or starting with
# one of the long prefixes, is a placeholder that was never replaced.
_PLACEHOLDER_SECRETS = frozenset({"secret", "password", "default", "example", "dev", "test"})
_PLACEHOLDER_PREFIXES = (
    "changeme",
    "change-me",
    "change_me",
    "insecure",
    "django-insecure",
    "replace-me",
    "replace_me",
    "your-secret",
    "your_secret",
)
# Character orders people type: alphabet, digits, keyboard rows.
_SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "qwertzuiop",
    "azertyuiop",
)
_ADJACENT = frozenset(
    pair
    for sequence in _SEQUENCES
    for index in range(len(sequence) - 1)
    for pair in (sequence[index : index + 2], sequence[index + 1] + sequence[index])
)
_ENTROPY_WINDOW = 256


def weak_secret(value: str, min_length: int, min_bits: int) -> bool:
    """Whether ``value`` is too short, a placeholder, or under ``min_bits`` of estimated entropy."""
    lowered = value.lower()
    return (
        len(value) < min_length
        or lowered in _PLACEHOLDER_SECRETS
        or lowered.startswith(_PLACEHOLDER_PREFIXES)
        or estimate_entropy_bits(value) < min_bits
    )


def estimate_entropy_bits(value: str) -> float:
    """Estimate how many bits an attacker must guess to find ``value``.

    Each character costs ``log2`` of the alphabet its character classes span (lower,
    upper, digits, others); a block that repeats earlier text costs only where and how
    long it is, and a run along the alphabet, the digits or a keyboard row (``abcd``,
    ``4321``, ``qwerty``) costs about one character. So ``"0123456789" * 4`` is about 12
    bits where ``secrets.token_urlsafe(32)`` is over 250. Only the first 256 characters
    are read. A heuristic for catching human-made keys, not a strength proof.

    Args:
        value: The secret.

    Returns:
        The estimate in bits.
    """
    text = value[:_ENTROPY_WINDOW]
    lowered = text.lower()
    alphabet = (
        26 * any(c.islower() for c in text)
        + 26 * any(c.isupper() for c in text)
        + 10 * any(c.isdigit() for c in text)
        + 33 * any(not c.isalnum() for c in text)
    )
    per_char = math.log2(max(alphabet, 2))
    bits = 0.0
    index = 0
    while index < len(text):
        repeat = _repeat_length(text, index)
        if repeat >= 3:
            bits += math.log2(index + 1) + math.log2(repeat + 1)
            index += repeat
            continue
        run = _run_length(lowered, index)
        if run >= 3:
            bits += per_char + math.log2(run) + 1
            index += run
            continue
        bits += per_char
        index += 1
    return bits


def _repeat_length(text: str, index: int) -> int:
    """Length of the longest block at ``index`` that also starts earlier (overlap allowed)."""
    length = 0
    while index + length < len(text):
        candidate = text[index : index + length + 1]
        if text.find(candidate, 0, index + length) == -1:
            break
        length += 1
    return length


def _run_length(lowered: str, index: int) -> int:
    """Length of the run of neighbouring characters of a known order starting at ``index``."""
    end = index + 1
    while end < len(lowered) and lowered[end - 1 : end + 1] in _ADJACENT:
        end += 1
    return end - index
