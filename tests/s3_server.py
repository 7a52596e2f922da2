"""An S3-compatible server on loopback for the object-storage tests (moto's standalone server).

:func:`s3_environment` starts it on a free port and sets the environment that s3fs (and
every child process the tests start) reads: dummy credentials and ``AWS_ENDPOINT_URL``,
as a user's configuration would give them; everything is restored afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.request

BUCKET = "grandtour-test"
_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
         "GRANDTOUR_LOCK_LEASE_S")


@contextlib.contextmanager
def s3_environment(lease_s: str = "1"):
    """Yield the endpoint URL of a fresh server with the bucket :data:`BUCKET`. ``lease_s``:
    the writer lock's lease, short so that a killed writer's lock expires within a test."""
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = {k: os.environ.get(k) for k in _KEYS}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=f"http://{host}:{port}",
                      GRANDTOUR_LOCK_LEASE_S=lease_s)
    # moto keeps its buckets in module-level backends shared by every server of this process:
    # reset them, so that each environment starts empty whatever ran before it.
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"))
    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir(BUCKET)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
