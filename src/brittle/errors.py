"""Exceptions with messages meant for people, not stack traces."""


class BrittleError(Exception):
    """Base class: the CLI prints these as one line and exits 1."""


class DataError(BrittleError):
    """Malformed input data; the message starts with `path:line:`."""


class MissingResource(BrittleError):
    """An offline data/weights package is not installed."""
