#!/usr/bin/env python3
"""Atheris (libFuzzer) harness for the specc parser and validator.

Each input is taken as the bytes of a spec file: it is written to a fresh
temporary directory (beside a small valid `base.yaml`, so `extends: base.yaml`
finds something) and checked with `specc.compiler.check_spec`. The contract
under test is the one SECURITY.md states for a hostile spec:

* check_spec returns a list (of diagnostics) for every input: any exception
  that escapes it is a crash;
* every diagnostic has a code `E0xx`, a 1-based line and column, and a message;
* the diagnostics can be printed: formatted as text, github and json and encoded
  as UTF-8, as the CLI does (a lone surrogate escape such as "\\ud800" in a quoted
  value once made printing raise UnicodeEncodeError);
* a valid spec also survives `inspect` (sizes computed symbolically);
* libFuzzer's own -timeout and -rss_limit_mb catch hangs and memory blowups.

Not a pytest module (the name does not start with `test_`, and
tests/conftest.py ignores tests/fuzz/ anyway). See tests/fuzz/README.md.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

import atheris

# Run from anywhere: the repository root (two levels up) holds the `specc` package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

with atheris.instrument_imports():
    from specc.compiler import check_spec, compile_spec
    from specc.diagnostics import SpeccError, format_diagnostics
    from specc.inspection import inspect_json
    from specc.limits import DEFAULT_LIMITS

BASE_SPEC = b"""specc: 1
name: base
inputs:
  x: {shape: [4]}
network:
  - dense: 3
"""
CODE = re.compile(r"^E0[0-9][0-9]$")
_DIR = tempfile.mkdtemp(prefix="specc-fuzz-")
_SPEC = os.path.join(_DIR, "spec.yaml")
with open(os.path.join(_DIR, "base.yaml"), "wb") as _f:
    _f.write(BASE_SPEC)


class ContractViolation(AssertionError):
    pass


def check_one(data: bytes, limits=DEFAULT_LIMITS) -> list:
    """Run one input through the validator; raise on anything that breaks the contract."""
    with open(_SPEC, "wb") as handle:
        handle.write(data)
    diags = check_spec(_SPEC, limits)
    if not isinstance(diags, list):
        raise ContractViolation(f"check_spec returned {type(diags).__name__}, not a list")
    for d in diags:
        if not CODE.match(str(getattr(d, "code", ""))):
            raise ContractViolation(f"bad diagnostic code: {d!r}")
        if not (isinstance(d.span.line, int) and d.span.line >= 1 and d.span.column >= 1):
            raise ContractViolation(f"bad diagnostic location: {d!r}")
        if not (isinstance(d.message, str) and d.message):
            raise ContractViolation(f"empty diagnostic message: {d!r}")
    for fmt in ("text", "github", "json"):
        format_diagnostics(diags, fmt).encode("utf-8")  # what printing them does
    if not diags:
        try:
            inspect_json(compile_spec(_SPEC, limits).graph)
        except SpeccError:
            pass  # e.g. a hard limit only inspect reaches; a diagnostic, not a crash
    return diags


def TestOneInput(data: bytes) -> None:
    check_one(data)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
