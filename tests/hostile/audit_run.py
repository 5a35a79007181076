"""`python -m specc ARGS`, watched by a PEP 578 audit hook (used by tests/test_hostile.py).

    python tests/hostile/audit_run.py validate spec.yaml --ci

Runs the CLI exactly as `python -m specc` does, after installing an audit hook
that stops the process (exit 97, `AUDIT VIOLATION` on stderr) at the first sign
that a spec made specc do something `validate`/`inspect` must never do:

* start a process or run a shell command (os.system, subprocess, exec*, spawn*, fork);
* touch the network (any socket event);
* load native code or unpickle (ctypes, pickle.find_class);
* open a file for writing, or create, remove, rename or chmod one.

Not a pytest module (its name does not start with `test_`).
"""

from __future__ import annotations

import os
import runpy
import sys

_FORBIDDEN_PREFIXES = (
    "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg",
    "subprocess.", "pty.", "socket.", "ctypes.", "pickle.find_class", "webbrowser.", "urllib.", "http.",
    "ftplib.", "smtplib.", "telnetlib.", "os.remove", "os.unlink", "os.rename", "os.rmdir", "os.mkdir",
    "os.symlink", "os.link", "os.truncate", "os.chmod", "os.chown", "os.mkfifo", "os.mknod", "shutil.",
    "sqlite3.", "winreg.",
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _violation(event: str, args) -> None:
    try:
        detail = repr(args)[:300]
    except Exception:  # pragma: no cover - a repr that fails
        detail = "?"
    os.write(2, f"AUDIT VIOLATION: {event} {detail}\n".encode("utf-8", "replace"))
    os._exit(97)


def _hook(event: str, args) -> None:
    if event.startswith(_FORBIDDEN_PREFIXES):
        _violation(event, args)
    elif event == "open":
        path, mode, flags = (tuple(args) + (None, None, None))[:3]
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                 (isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writes and path not in (1, 2):   # fds 1 and 2: stdout/stderr reopened by the runtime
            _violation(event, args)


def main() -> None:
    sys.dont_write_bytecode = True           # importing must not write .pyc files either
    sys.addaudithook(_hook)
    sys.argv = ["specc", *sys.argv[1:]]
    runpy.run_module("specc", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
