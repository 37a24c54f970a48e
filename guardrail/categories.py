"""Llama Guard 3's hazard categories and the parser for its verdict.

Source: the Llama Guard 3 model card (meta-llama/Llama-Guard-3-8B, and the PurpleLlama repository's
Llama-Guard3/8B/MODEL_CARD.md): the model answers with a first line `safe` or `unsafe`; after `unsafe`, a
second line lists the violated categories, comma-separated, as codes S1..S14 (MLCommons hazard taxonomy).
Llama Guard 3-1B and -11B-Vision use the same codes (S14, Code Interpreter Abuse, is 8B-only in the card's
table; a 1B answer never names it, which this parser does not need to know).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Code -> name, from the model card's "Hazard Taxonomy and Policy" table.
LLAMA_GUARD_3_CATEGORIES: dict[str, str] = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}

_CODE = re.compile(r"\bS(\d{1,2})\b", re.IGNORECASE)


class VerdictError(ValueError):
    """The classifier's answer is neither `safe` nor `unsafe` (e.g. a model that is not a Llama Guard)."""


@dataclass(frozen=True)
class Verdict:
    """A classifier's answer: `safe`, and when unsafe the category codes it named (sorted S1..S14; may be
    empty when the model said `unsafe` without naming one)."""

    safe: bool
    categories: tuple[str, ...] = ()


def parse_verdict(text: str) -> Verdict:
    """Parse a Llama Guard answer such as "safe", "unsafe\\nS1,S3", " unsafe \\n s10 " or "unsafe\\nS1, S14".

    Robust to surrounding whitespace, case, spaces after commas and a trailing period. Codes outside
    S1..S14 are dropped (the taxonomy has no others). Raises VerdictError when the first non-empty line is
    neither word, quoting the start of the answer.
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    head = lines[0].lower().rstrip(".") if lines else ""
    if head == "safe":
        return Verdict(safe=True)
    if head != "unsafe":
        raise VerdictError(
            f"the classifier answered {text[:80]!r}, not 'safe' or 'unsafe': is the classifier model a "
            "Llama Guard model served with its own chat template?"
        )
    found = {f"S{int(m.group(1))}" for line in lines[1:] for m in _CODE.finditer(line)}
    codes = sorted((c for c in found if c in LLAMA_GUARD_3_CATEGORIES), key=lambda c: int(c[1:]))
    return Verdict(safe=False, categories=tuple(codes))


def describe(codes: tuple[str, ...] | list[str]) -> str:
    """ "S1 (Violent Crimes), S10 (Hate)" for error messages and headers' readers."""
    return ", ".join(f"{c} ({LLAMA_GUARD_3_CATEGORIES.get(c, 'unknown')})" for c in codes) or "unspecified"
