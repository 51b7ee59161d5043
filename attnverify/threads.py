"""One BLAS/OpenMP thread for the commands whose results must repeat bit for bit.

A threaded BLAS sums in an order that depends on the thread count, and iterative solvers amplify
that round-off (FD-MEM's value moved by 3e-5 relative between 1 and 2 threads); with one thread a
rerun repeats the same float operations, which is what ``attnverify regress`` relies on. The
problems are small, so nothing is lost.

The limit is set inside the functions that need it (``verify``, ``regress``, ``solve``, ``sweep``
and :func:`attnverify.verify`), never at import: importing attnverify leaves the process's
threads and environment alone. ``ATTNVERIFY_THREADS`` changes the count.
"""

from __future__ import annotations

import contextlib
import os

from .validate import InputError

# read by OpenBLAS, MKL and OpenMP (torch) when they start: what a library loaded later inside the
# block, and every worker process started inside it (the sweep's pool, a local Dask cluster), obeys
VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def count() -> int:
    """The thread count asked for: ATTNVERIFY_THREADS, default 1."""
    raw = os.environ.get("ATTNVERIFY_THREADS", "1")
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise InputError(f"ATTNVERIFY_THREADS: must be a positive integer, got {raw!r}")
    return n


@contextlib.contextmanager
def limited():
    """Inside the block, BLAS/OpenMP use :func:`count` threads; both limits are undone on exit.

    Two mechanisms, because libraries read their thread count at different times: threadpoolctl
    limits the libraries already loaded (numpy's OpenBLAS), and the environment variables of
    :data:`VARIABLES` govern those loaded later inside the block (SciPy's OpenBLAS, torch) and the
    worker processes started inside it."""
    from threadpoolctl import threadpool_limits

    n = count()
    saved = {k: os.environ.get(k) for k in VARIABLES}
    os.environ.update({k: str(n) for k in VARIABLES})
    try:
        with threadpool_limits(limits=n):
            yield n
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
