"""The one exception type for user mistakes: the CLI prints it as a one-line error, no traceback."""


class UserError(Exception):
    """Bad input from the user (a missing file, a malformed line, a wrong key).

    The message names the file, line or key and says what to do; the command line turns it into
    ``elmo-tasks: error: <message>`` and a non-zero exit.
    """
