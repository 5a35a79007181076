"""Located diagnostics: every problem specc reports carries a span.

One exception type (`SpeccError`) carries one or more `Diagnostic`s; nothing
else is allowed to reach a user. Collecting stages append to a `Diagnostics`
bag so that several independent mistakes in one file are all reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple


class Span(NamedTuple):
    """A place in a source file; line and column are 1-based. (A tuple: one is made per YAML node.)
    Line 0 means the file as a whole (an input array, a build directory): it is shown as the path
    alone, never with a made-up `:1:1`."""

    path: str
    line: int = 1
    column: int = 1

    @classmethod
    def whole_file(cls, path: str) -> "Span":
        return cls(path, 0, 0)

    @property
    def has_position(self) -> bool:
        return self.line >= 1

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}" if self.has_position else self.path


# For the few problems that are about the installation, not about any file (e.g. a missing optional
# dependency): printed as `error[CODE]: message`, with no location.
NOWHERE = Span("", 0, 0)


def printable(text: str) -> str:
    """Text safe for a terminal and any encoding: control characters and lone surrogates from a
    hostile spec are shown as escapes, never sent raw (no screen clearing, no encoding crash)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in text)


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    hint: str | None = None
    severity: str = "error"
    notes: tuple = ()  # (Span, text) pairs: related places, e.g. the block use an inner error came from

    def __post_init__(self):
        object.__setattr__(self, "message", printable(self.message))
        if self.hint is not None:
            object.__setattr__(self, "hint", printable(self.hint))
        if not self.span.path.isprintable():
            object.__setattr__(self, "span", self.span._replace(path=printable(self.span.path)))

    def format_text(self) -> str:
        where = f"{self.span}: " if self.span != NOWHERE else ""
        text = f"{where}{self.severity}[{self.code}]: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        for span, note in self.notes:
            text += f"\n  note: {span}: {printable(note)}"
        return text

    def format_github(self) -> str:
        # Workflow commands: a hostile file name or message must not start a command of its own,
        # so data and property values are escaped as GitHub's toolkit does.
        message = f"[{self.code}] {self.message}" + (f" (hint: {self.hint})" if self.hint else "")
        if self.span == NOWHERE:
            return f"::{self.severity} title=specc {self.code}::{_github_data(message)}"
        where = f",line={self.span.line},col={self.span.column}" if self.span.has_position else ""
        return (f"::{self.severity} file={_github_property(self.span.path)}{where},"
                f"title=specc {self.code}::{_github_data(message)}")

    def as_dict(self) -> dict:
        return {
            "path": self.span.path,
            "line": self.span.line if self.span.has_position else None,
            "column": self.span.column if self.span.has_position else None,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            **({"notes": [{"path": span.path, "line": span.line, "column": span.column, "message": note}
                          for span, note in self.notes]} if self.notes else {}),
        }


def _github_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _github_property(text: str) -> str:
    return _github_data(text).replace(":", "%3A").replace(",", "%2C")


class SpeccError(Exception):
    """Raised when a stage cannot go on; carries every diagnostic found so far."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(d.format_text() for d in self.diagnostics))


def error(code: str, message: str, span: Span, hint: str | None = None) -> SpeccError:
    return SpeccError(Diagnostic(code, message, span, hint))


MAX_DIAGNOSTICS = 100  # per file: past this a hostile spec only makes the report unreadable


@dataclass
class Diagnostics:
    """A bag that collects diagnostics; duplicates (same span and text) are kept once."""

    items: list[Diagnostic] = field(default_factory=list)
    seen: set = field(default_factory=set)
    dropped: int = 0

    def add(self, diagnostic: Diagnostic) -> None:
        if diagnostic in self.seen:
            return
        if len(self.items) >= MAX_DIAGNOSTICS:
            self.dropped += 1
            return
        self.seen.add(diagnostic)
        self.items.append(diagnostic)

    @property
    def full(self) -> bool:
        return len(self.items) >= MAX_DIAGNOSTICS

    def error(self, code: str, message: str, span: Span, hint=None, notes: tuple = ()) -> None:
        """`hint` may be a callable: it is only computed for a diagnostic that will be shown."""
        if self.full:
            self.dropped += 1
            return
        self.add(Diagnostic(code, message, span, hint() if callable(hint) else hint, notes=tuple(notes)))

    def extend(self, diagnostics) -> None:
        for d in diagnostics:
            self.add(d)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    def raise_if_errors(self) -> None:
        if self.has_errors:
            raise SpeccError(self.sorted())

    def sorted(self) -> list[Diagnostic]:
        items = sorted(self.items, key=lambda d: (d.span.path, d.span.line, d.span.column))
        if self.dropped:
            last = items[-1].span
            items.append(Diagnostic("E000", f"{self.dropped:,} more problems not shown (the first "
                                    f"{MAX_DIAGNOSTICS} are above)", last, "fix these and run again"))
        return items


def format_diagnostics(diagnostics: list[Diagnostic], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([d.as_dict() for d in diagnostics], indent=2)
    if fmt == "github":
        return "\n".join(d.format_github() for d in diagnostics)
    return "\n".join(d.format_text() for d in diagnostics)


def did_you_mean(word: str, candidates, n: int = 1) -> str | None:
    """A 'did you mean' hint, or None when nothing is close."""
    import difflib

    word = str(word)[:100]
    pool = sorted(set(map(str, candidates)))
    if len(pool) > _FULL_COMPARE:
        # difflib compares every candidate in full; on specs with thousands of similar names keep the
        # ones sharing the longest prefix or suffix with the word (typos rarely touch both ends). In
        # sorted order those stand next to where the word would go: bisect, don't score them all.
        pool = _neighbours(word, pool) | {c[::-1] for c in _neighbours(word[::-1], sorted(c[::-1] for c in pool))}
        pool = sorted(pool, key=lambda c: (-max(_common(word, c), _common(word[::-1], c[::-1])),
                                           abs(len(c) - len(word)), c))[:_FULL_COMPARE]
    matches = difflib.get_close_matches(word, pool, n=n, cutoff=0.6)
    if not matches:
        return None
    return "did you mean " + " or ".join(f"`{m}`" for m in matches) + "?"


_FULL_COMPARE = 100


def _neighbours(word: str, ordered: list) -> set:
    """The names around `word`'s place in sorted `ordered`: those sharing its longest prefixes."""
    import bisect

    at = bisect.bisect_left(ordered, word)
    return set(ordered[max(0, at - _FULL_COMPARE): at + _FULL_COMPARE])


def _common(a: str, b: str) -> int:
    """Length of the common prefix of two strings."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
