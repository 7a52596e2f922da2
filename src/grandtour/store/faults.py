"""Fault injection: named points inside every write of the store, for tests.

A test sets :attr:`RunWriter._test_hook <grandtour.store.RunWriter>` to a function of
the stage name; the store calls it at each point below, so the test can kill the
process there (``os.kill(os.getpid(), signal.SIGKILL)``) or raise, and then check what
a reader and a resumed writer see (``tests/test_reliability.py``).

Stages, in the order a run is written:

``create_locked``
    ``RunWriter.create``: the directory exists and is locked, nothing else is written.
``create_root``
    the root metadata (``schema.ZARR_META``) is written, no array yet.
``create_arrays``
    every array is created; the (empty) commit record is next.
``resized``, ``activations``, ``before_commit``
    ``write_epoch``: the epoch axis is grown; the activations are written; everything
    but the commit record is written.
``commit_tmp``
    any JSON record (a commit record, a group record): the temporary file is written
    and synced, the rename onto the record is next.
``committed``
    ``write_epoch``: the commit record is replaced; the call is about to return.
``adversarial_arrays``, ``adversarial_committed``
    ``write_adversarial``: the new generation is written; it is committed and the
    previous generation is about to be deleted.
``group_cleared``
    ``Run.create_group``: the previous group is deleted, the new record is next.
"""

from __future__ import annotations

#: Every stage, in the order above (a test iterates over them).
STAGES = ("create_locked", "create_root", "create_arrays", "resized", "activations",
          "before_commit", "commit_tmp", "committed", "adversarial_arrays",
          "adversarial_committed", "group_cleared")


def point(stage: str) -> None:
    """Call the test hook, if one is set, with ``stage``."""
    from grandtour.store.writer import RunWriter  # the hook lives where tests have set it

    hook = RunWriter._test_hook  # noqa: SLF001 - the documented testing aid
    if hook is not None:
        hook(stage)
