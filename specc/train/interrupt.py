"""Stopping a run on Ctrl-C or SIGTERM without losing the epoch in progress.

The first signal only asks: the loop finishes the mini-batch in hand, writes a checkpoint at that
position (the one `--checkpoint-every` writes, so `specc train --resume` continues exactly where it
stopped) and raises `RunInterrupted`. A second signal stops at once, as Ctrl-C always did; the last
checkpoint is then the one before.

Only a single-process run asks: the processes of a distributed run would each stop after a different
mini-batch, and the others would wait for them forever, so there the signals keep their usual effect.
A SIGINT that the process was started ignoring (a shell's background job) stays ignored.
"""

from __future__ import annotations

import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped on request, its position saved in `run_dir`."""

    def __init__(self, run_dir: str | None):
        super().__init__(run_dir)
        self.run_dir = run_dir


class GracefulStop:
    """`with GracefulStop(enabled) as stop:` ... `stop.requested` is true once a signal has asked."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous: dict = {}

    def __enter__(self) -> "GracefulStop":
        if self.enabled:
            for signum in SIGNALS:
                previous = signal.getsignal(signum)
                if signum == signal.SIGINT and previous is signal.SIG_IGN:
                    continue
                self._previous[signum] = previous
                signal.signal(signum, self._ask)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _ask(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\nspecc: {signal.Signals(signum).name}: stopping after this mini-batch and saving the run "
              "(send it again to stop at once)", file=sys.stderr, flush=True)
