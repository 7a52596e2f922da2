"""The run store: every layer's activations of fixed probe sets, epoch by epoch (Zarr v3).

The store is the one contract between the Python side (training, recording, the
adversarial steps) and everything that reads a run (alignment, baselines, the
server and the viewer). One run is one directory (or one prefix of a bucket); its layout is documented in
``docs/store.md``. The package reads as the format:

``schema``
    every file, directory and field name of a run, the versions, the typed records
    (root metadata, commit record, adversarial attributes); nothing else spells them;
``codec``
    float16 with a power-of-two scale, chunking, checksums, atomic JSON writes, disk errors;
``validate``
    checks at the boundary and messages that list what exists;
``location``
    where a run lives: a local directory (a ``Path``) or an fsspec URL (``s3://...``, a
    :class:`~grandtour.store.location.RemotePath`); what differs between them;
``layout``
    an open run directory (metadata, commit record, arrays), shared by reader and writer;
``integrity``
    cross-checks of the metadata and the chunks a read needs;
``lock``
    :class:`RunLock`: one writer per run at a time (an OS advisory lock; a lease object
    with conditional writes on object storage);
``creation``
    the directory, root and arrays of a new run;
``writer``
    :class:`RunWriter`: create a run, append epochs and adversarial records;
    :class:`ShardWriter`: other processes' shares of an epoch (torch.distributed);
``reader``
    :class:`Run`, :class:`AdversarialRecord`: read, also while a run is being written;
``groups``
    :class:`DerivedGroup`: ``RUN/alignment/`` and ``RUN/comparisons/``, committed like a run;
``importer``
    runs from arrays or ``.npz`` files (``grandtour import``);
``info``
    ``grandtour info``;
``check``
    :func:`check_run`, ``grandtour check``: verify a whole run;
``faults``
    named fault-injection points inside every write (tests).

Writing is append-only and commits last: an epoch goes to a fresh slot at the end of
the epoch axis, and only the commit record (replaced atomically) makes it exist.
Zarr is imported on first use, so ``grandtour --help`` works without it.
"""

# The errors, so a caller of the store needs one import (StoreError was always importable here).
from grandtour.errors import CorruptFileError, GrandTourError, NotAlignedError, StoreError  # noqa: F401
from grandtour.store.check import CheckReport, Damage, check_command, check_run
from grandtour.store.codec import (
    CHUNK_BYTES,
    FLOAT16_MAX,
    decode_float16,
    encode_float16,
    write_json_atomic,
)
from grandtour.store.codec import zarr_module as _zarr  # noqa: F401 - the old private name
from grandtour.store.groups import DerivedGroup
from grandtour.store.importer import import_command
from grandtour.store.info import format_info, info_command
from grandtour.store.lock import LockHolder, RunLock, RunLockedError
from grandtour.store.reader import AdversarialRecord, Run
from grandtour.store.schema import (
    COMMIT_FILE,
    DERIVED_GROUPS,
    STORE_VERSION,
    LayerInfo,
    ProbeSet,
)
from grandtour.store.validate import StoreKeyError
from grandtour.store.writer import RunWriter, ShardWriter

__all__ = [
    "CHUNK_BYTES",
    "COMMIT_FILE",
    "DERIVED_GROUPS",
    "FLOAT16_MAX",
    "STORE_VERSION",
    "AdversarialRecord",
    "CheckReport",
    "Damage",
    "DerivedGroup",
    "LayerInfo",
    "LockHolder",
    "NotAlignedError",
    "ProbeSet",
    "Run",
    "RunLock",
    "RunLockedError",
    "RunWriter",
    "ShardWriter",
    "StoreError",
    "StoreKeyError",
    "check_command",
    "check_run",
    "decode_float16",
    "encode_float16",
    "format_info",
    "import_command",
    "info_command",
    "write_json_atomic",
]
