"""The one error type meant for users: the CLI prints it as one line and exits 2."""


class HwsearchError(Exception):
    """A user-facing error (bad input, missing file, impossible budget)."""
