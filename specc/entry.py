"""The `specc` console script: the command line, with Ctrl-C honoured from the first instant.

Importing the command line takes a moment (argparse, YAML, the diagnostics); an
interrupt during that import would otherwise reach the user as a traceback.
This module imports nothing of specc until it is inside the guard.
"""

import sys

INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def main() -> int:
    try:
        from specc.cli import main as cli_main
        return cli_main()
    except KeyboardInterrupt:  # cli_main handles its own; this is the import and argument parsing
        print("specc: interrupted", file=sys.stderr)
        return INTERRUPTED
