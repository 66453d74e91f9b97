"""The one exception type for user mistakes: the CLI prints it as a one-line error, no traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn


class UserError(Exception):
    """Bad input from the user (a missing file, a malformed line, a wrong key).

    The message names the file, line or key and says what to do; the command line turns it into
    ``elmo-tasks: error: <message>`` and a non-zero exit.
    """


def run_script(main: Callable[[], int], prog: str) -> NoReturn:
    """Exit with ``main()``'s code; a ``UserError`` becomes ``<prog>: error: <message>`` and exit 2, as in the CLI.

    For the scripts outside the CLI (``benchmarks/``).
    """
    import sys

    try:
        code = main()
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
