"""Located diagnostics: every problem specc reports carries a span.

One exception type (`SpeccError`) carries one or more `Diagnostic`s; nothing
else is allowed to reach a user. Collecting stages append to a `Diagnostics`
bag so that several independent mistakes in one file are all reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Span:
    """A place in a source file; line and column are 1-based."""

    path: str
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    hint: str | None = None
    severity: str = "error"

    def format_text(self) -> str:
        text = f"{self.span}: {self.severity}[{self.code}]: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def format_github(self) -> str:
        # Workflow commands: a hostile file name or message must not start a command of its own,
        # so data and property values are escaped as GitHub's toolkit does.
        message = f"[{self.code}] {self.message}" + (f" (hint: {self.hint})" if self.hint else "")
        return (
            f"::{self.severity} file={_github_property(self.span.path)},line={self.span.line},"
            f"col={self.span.column},title=specc {self.code}::{_github_data(message)}"
        )

    def as_dict(self) -> dict:
        return {
            "path": self.span.path,
            "line": self.span.line,
            "column": self.span.column,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
        }

    def shifted(self, **changes) -> "Diagnostic":
        return replace(self, **changes)


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


@dataclass
class Diagnostics:
    """A bag that collects diagnostics; duplicates (same span and text) are kept once."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        if diagnostic not in self.items:
            self.items.append(diagnostic)

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.add(Diagnostic(code, message, span, hint))

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
        return sorted(self.items, key=lambda d: (d.span.path, d.span.line, d.span.column))


def format_diagnostics(diagnostics: list[Diagnostic], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([d.as_dict() for d in diagnostics], indent=2)
    if fmt == "github":
        return "\n".join(d.format_github() for d in diagnostics)
    return "\n".join(d.format_text() for d in diagnostics)


def did_you_mean(word: str, candidates, n: int = 1) -> str | None:
    """A 'did you mean' hint, or None when nothing is close."""
    import difflib

    matches = difflib.get_close_matches(str(word), sorted(set(map(str, candidates))), n=n, cutoff=0.6)
    if not matches:
        return None
    return "did you mean " + " or ".join(f"`{m}`" for m in matches) + "?"
