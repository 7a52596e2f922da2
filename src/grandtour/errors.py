"""Errors a user can act on.

Every error raised at a boundary (a file, a flag, a request) is a subclass of
:class:`GrandTourError`, whose message says what was wrong *and what to do*. The CLI
prints these without a traceback; anything else is a bug and keeps its traceback.
"""


class GrandTourError(Exception):
    """Base class of the errors whose message is meant for the user."""


class DatasetNotFoundError(GrandTourError, FileNotFoundError):
    """A dataset's files are not where we looked; the message says where to get them."""


class CorruptFileError(GrandTourError, ValueError):
    """A file exists but is truncated or not in the expected format; the message names it."""


class StoreError(GrandTourError):
    """A run store is missing, incomplete or inconsistent; the message names the array."""


class NotAlignedError(StoreError, LookupError):
    """A run, or one (layer, epoch) of it, has no stored alignment; the message says to
    run ``grandtour align RUN``."""
