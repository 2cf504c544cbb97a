"""Decoding images ahead of the consumer, in a pool of threads, in order, with bounded memory.

Pillow releases the GIL while it decodes and resizes, and LiteRT and
onnxruntime release it while they run, so threads use every core here.
Whatever the number of workers, results come back in the order of the
inputs, so every figure computed from them is the same as with one worker.
Never imports TensorFlow (the board runs this).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from edgeshuffle.errors import InvalidArgumentError

T = TypeVar("T")
R = TypeVar("R")


def default_jobs() -> int:
    """The cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    return len(os.sched_getaffinity(0))


def check_jobs(jobs: int) -> int:
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise InvalidArgumentError(f"Jobs must be a whole number of at least 1. Received: `jobs={jobs}`")
    return jobs


@contextlib.contextmanager
def worker_pool(jobs: int) -> Iterator[concurrent.futures.Executor | None]:
    """``jobs`` threads, or None for one job (everything then runs in the calling thread).

    On exit (also on Ctrl-C) queued work is cancelled and running work finishes.
    """
    if check_jobs(jobs) == 1:
        yield None
        return
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="edgeshuffle")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def ordered_map(function: Callable[[T], R], items: Iterable[T], pool: concurrent.futures.Executor | None,
                ahead: int) -> Iterator[R]:
    """``map(function, items)`` computed in ``pool``, at most ``ahead`` items in flight, yielded in order.

    An exception raised by ``function`` is raised here, at its item's turn.
    """
    if pool is None:
        yield from map(function, items)
        return
    pending: collections.deque[concurrent.futures.Future] = collections.deque()
    try:
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
