"""UserError: bad input, reported as one line with exit code 2 and no traceback."""


class UserError(Exception):
    """An error in what the user gave (a file, a key, a value) with the fix in its message."""

    exit_code = 2
