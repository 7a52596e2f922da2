"""Object-store requests per recorded epoch (issue 15), counted on a loopback S3 server.

Every request s3fs sends (``S3FileSystem._call_s3``: the store's own calls and Zarr's,
the lease's renewals included) is counted by its S3 operation, for one epoch written
after the first:

- ``writer``: ``RunWriter.write_epoch`` of the tests' toy run (tests/reliability_run.py:
  two splits, layers input (static), fc, softmax, two parameter arrays);
- ``Recorder.record`` of the digits network (20 probes per split, 10 layers);
- with ``--train``: an epoch of ``grandtour.train.train`` on the digits network (20
  probes per split: the Recorder's epoch and the training state object).

The server is moto's (``tests/s3_server.py``), the lease 60 s (no background renewal
within an epoch). Run from the repository root: ``python benchmarks/bench_requests.py [--train]`` (``--train``
needs ``train`` to take a URL, which it does since this script exists);
against another checkout's code with ``PYTHONPATH=that/src``.
"""

from __future__ import annotations

import collections
import sys
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

COUNTS: collections.Counter = collections.Counter()


def _count_requests() -> None:
    import s3fs

    original = s3fs.S3FileSystem._call_s3  # noqa: SLF001 - the one method every request goes through

    async def counting(self, method, *args, **kwargs):
        COUNTS[method] += 1
        return await original(self, method, *args, **kwargs)

    s3fs.S3FileSystem._call_s3 = counting  # noqa: SLF001


def _show(what: str, counts: collections.Counter) -> None:
    detail = ", ".join(f"{k} {v}" for k, v in counts.most_common())
    print(f"{what}: {sum(counts.values())} requests ({detail})")


def main() -> None:
    _count_requests()
    from reliability_run import create, write
    from s3_server import BUCKET, s3_environment

    import grandtour

    print(f"grandtour from {Path(grandtour.__file__).parent}")
    with s3_environment(lease_s="60"):
        w = create(f"s3://{BUCKET}/runs/{uuid.uuid4().hex[:8]}")
        write(w, [0])
        COUNTS.clear()
        write(w, [1])
        _show("writer, one epoch (toy run)", COUNTS)
        w.close()

        import torch

        from grandtour.models import build_model, normalize
        from grandtour.record import Recorder

        rng = np.random.default_rng(0)
        probes = {}
        for split in ("train", "test"):
            images = rng.integers(0, 256, size=(20, 1, 8, 8), dtype=np.uint8)
            probes[split] = (normalize(images, "digits"), np.arange(20) % 10)
        torch.manual_seed(0)
        rec = Recorder(build_model("digits"), f"s3://{BUCKET}/runs/{uuid.uuid4().hex[:8]}", probes=probes,
                       dataset="digits")
        rec.record(0)
        COUNTS.clear()
        rec.record(1)
        _show("Recorder.record, one epoch (digits network)", COUNTS)
        del rec  # its writer releases the lock while the server runs
        import gc

        gc.collect()
        if "--train" in sys.argv:  # grandtour.train (a URL as its --out: this change on)
            from grandtour.data import load_dataset
            from grandtour.train import train

            marks = []
            train(load_dataset("digits"), f"s3://{BUCKET}/runs/{uuid.uuid4().hex[:8]}", epochs=2, probe_size=20,
                  lr=0.05, logit_relu=False, progress=False,
                  callbacks=[lambda epoch, logs: marks.append(collections.Counter(COUNTS))])
            _show("train, one epoch (digits network)", marks[-1] - marks[-2])


if __name__ == "__main__":
    main()
