"""Telling a spec from other YAML without parsing it: a spec has a top-level `specc:` key.

Used where a file may be anything: an `extends` target (never parsed unless
it says it is a spec, so a hostile spec cannot make specc quote a secret),
and `specc validate --skip-non-specs`, which pre-commit runs on every YAML
file of a repository (CI workflows, compose files, manifests).
"""

from __future__ import annotations

import os
import re
import stat

# A top-level `specc:` key: at the start of a line (block style) or right after an opening `{` (flow).
SPEC_MARKER = re.compile(r"^(?:\{[ \t]*)?[\"']?specc[\"']?[ \t]*:", re.MULTILINE)


def declares_spec(path: str, max_bytes: int) -> bool:
    """Whether the file's first `max_bytes` (the spec size limit) hold a top-level `specc:` key.

    Anything that cannot be read as a regular file counts as a spec, so that validating it
    reports the problem instead of skipping it quietly."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return True
        with open(path, "rb") as handle:
            # read(n) allocates n bytes up front: never more than the file holds.
            head = handle.read(min(max_bytes, info.st_size))
    except (OSError, ValueError):
        return True
    return SPEC_MARKER.search(head.decode("utf-8", errors="replace").removeprefix("\ufeff")) is not None
