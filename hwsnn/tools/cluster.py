"""Fan work out over Dask (dask.distributed): simulation regressions, ``explore``'s
candidates, ``bench``'s sections, the random-network exactness runs.

By default a ``LocalCluster`` on this machine with one single-threaded worker process per
core; ``scheduler="tcp://HOST:PORT"`` runs the same on an existing cluster, whose workers
must have hwsnn (and the simulators or YoWASP tools the work needs) installed and see the
same file system paths (the conversion directories are read and written by the workers).

    from hwsnn.tools.cluster import map_ordered
    results = map_ordered(work, items, workers=2, desc="sim")

Results always come back in the order of ``items``, so a run on any number of workers
gives the same answer as a serial one; a task that fails raises its error here (a
worker that dies is replaced and its tasks run again elsewhere, by Dask).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterable

from ..errors import HwsnnError, ParameterError


class ClusterError(HwsnnError):
    """The scheduler cannot be reached, or a worker lacks what the work needs."""


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def check_workers(workers, scheduler: str | None = None) -> int | None:
    """``workers`` checked: None or a positive integer, and not given with a
    ``scheduler`` (whose own workers run the work)."""
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"--workers must be a positive integer, not {workers!r}")
    if scheduler is not None:
        raise ParameterError("--workers starts a local Dask cluster; with --scheduler the "
                             "cluster's own workers run the work: give one of them")
    return workers


@contextlib.contextmanager
def client(scheduler: str | None = None, workers: int | None = None):
    """A dask.distributed ``Client``: on the scheduler at ``scheduler``, or on a new
    ``LocalCluster`` of ``workers`` single-threaded processes (default: one per core)."""
    check_workers(workers, scheduler)
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - a dependency of hwsnn
        raise ClusterError("dask.distributed is not installed: pip install "
                           "'distributed==2026.8.0'") from None
    if scheduler is not None:
        try:
            c = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {exc} "
                               "(start one with 'dask scheduler' and workers with "
                               f"'dask worker {scheduler}')") from None
        try:
            yield c
        finally:
            c.close()
        return
    cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1,
                           processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    c = Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _which(tools) -> dict[str, bool]:
    return {t: shutil.which(t) is not None for t in tools}


def require_tools(c, tools: Iterable[str], why: str) -> None:
    """Refuse to start when a connected worker lacks one of the executables ``tools``
    (e.g. ``iverilog``), naming the worker and the tool, instead of letting its tasks
    fail one by one."""
    tools = list(tools)
    if not tools:
        return
    found = c.run(_which, tools)
    missing = {w: [t for t, ok in have.items() if not ok] for w, have in found.items()}
    missing = {w: ts for w, ts in missing.items() if ts}
    if missing:
        text = "; ".join(f"worker {w} has no {', '.join(ts)}" for w, ts in missing.items())
        raise ClusterError(f"{why}: {text} (install it on every worker, or leave that "
                           "worker out of the cluster)")


def map_ordered(fn: Callable, items: list, *, scheduler: str | None = None,
                workers: int | None = None, desc: str = "work", progress: bool = True,
                tools: Iterable[str] = (), serial_if_one: bool = True) -> list:
    """``[fn(item) for item in items]``, run on Dask workers; one progress bar for all of
    them. With one item, or ``workers=1`` and no scheduler, it runs here instead (the
    same function, so the same results) unless ``serial_if_one`` is false."""
    items = list(items)
    check_workers(workers)
    if serial_if_one and scheduler is None and (workers == 1 or len(items) <= 1):
        out = []
        bar = _bar(len(items), desc, progress)
        for item in items:
            out.append(fn(item))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return out
    from dask.distributed import as_completed
    with client(scheduler, workers) as c:
        require_tools(c, tools, f"{desc} needs {', '.join(tools)}")
        tag = uuid.uuid4().hex[:8]
        futures = [c.submit(fn, item, key=f"hwsnn-{desc}-{tag}-{i}", pure=False)
                   for i, item in enumerate(items)]
        bar = _bar(len(items), desc, progress)
        try:
            for fut in as_completed(futures):
                if fut.status == "error":
                    fut.result()  # raises the task's own error
                if bar is not None:
                    bar.update(1)
            return [f.result() for f in futures]
        finally:
            if bar is not None:
                bar.close()
            c.cancel(futures)


def _bar(total: int, desc: str, progress: bool):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="task", file=sys.stderr, leave=False)
