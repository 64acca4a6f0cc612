"""The kernel's chunks and partitions on forked worker processes.

Threads share the interpreter lock, which the kernel's many short array operations take
and release so often that a second thread adds little (measured on two cores: 1.1x for a
second thread, 2x for a second process). Children forked from the evaluating process
share its memory copy-on-write, so the prepared columns are not copied; they write their
results into shared anonymous memory (:func:`shared_empty`) and send anything else back
through a pipe. A child runs only array code on memory it inherited and leaves with
``os._exit``: it never returns into the caller's code.
"""

from __future__ import annotations

import itertools
import mmap
import os
import pickle
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

T = TypeVar("T")
X = TypeVar("X")

MIN_RECORDS = 1 << 21
"""Inputs of fewer records than this are evaluated in this process: a fork costs more."""


def available() -> bool:
    """Whether this platform can fork (POSIX)."""
    return hasattr(os, "fork")


def shared_empty(shape: int | tuple[int, ...], dtype: Any) -> npt.NDArray[Any]:
    """An uninitialized array in anonymous shared memory: what a forked child writes
    there, its parent reads."""
    dims = (shape,) if isinstance(shape, int) else shape
    count = int(np.prod(dims, dtype=np.int64))
    size = count * np.dtype(dtype).itemsize
    buffer = mmap.mmap(-1, max(size, 1))  # MAP_SHARED | MAP_ANONYMOUS
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(dims)


def _groups(items: Sequence[X], workers: int) -> list[Sequence[X]]:
    """``items`` cut into at most ``workers`` consecutive groups of near-equal size."""
    k = max(1, min(workers, len(items)))
    bounds = [round(i * len(items) / k) for i in range(k + 1)]
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


def _child(fn: Callable[[X], T], group: Sequence[X], write: int) -> None:
    """Run ``fn`` over ``group`` and send the results (or the error) down ``write``."""
    try:
        payload = pickle.dumps((True, [fn(x) for x in group]), protocol=5)
    except BaseException as exc:
        try:
            payload = pickle.dumps((False, exc))
        except Exception:
            payload = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
    with os.fdopen(write, "wb") as pipe:
        pipe.write(payload)


def map_forked(fn: Callable[[X], T], items: Sequence[X], workers: int) -> list[T]:
    """``[fn(x) for x in items]``, with the items cut into ``workers`` consecutive groups:
    the last runs here, each other in a child forked for it. The first error raised by any
    group is raised here, once every child has ended."""
    groups = _groups(items, workers)
    if len(groups) <= 1 or not available():
        return [fn(x) for x in items]
    children: list[tuple[int, int]] = []
    for group in groups[:-1]:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            os.close(read)
            status = 1
            try:
                _child(fn, group, write)
                status = 0
            finally:
                os._exit(status)
        os.close(write)
        children.append((pid, read))
    error: BaseException | None = None
    mine: list[T] = []
    try:
        mine = [fn(x) for x in groups[-1]]
    except BaseException as exc:
        error = exc
    results: list[T] = []
    for pid, read in children:
        with os.fdopen(read, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        if not data:
            error = error or RuntimeError(f"a worker process ended without a result ({status})")
            continue
        ok, value = pickle.loads(data)
        if ok:
            results.extend(value)
        else:
            error = error or value
    if error is not None:
        raise error
    return results + mine
