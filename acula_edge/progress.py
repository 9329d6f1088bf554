"""Progress bars for long work: tqdm when installed and stderr is a terminal, else quiet lines."""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], total: int | None = None, desc: str = "", enabled: bool = True,
             every_s: float = 5.0) -> Iterator[T]:
    """Iterate ``items`` showing progress on stderr (a bar on a TTY, else a line every ``every_s``)."""
    if not enabled:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm

            yield from tqdm(items, total=total, desc=desc, file=sys.stderr, dynamic_ncols=True)
            return
        except ImportError:
            pass
    # Not a terminal (a log, CI): a line at most every few seconds, and none for quick work.
    t0 = last = time.perf_counter()
    i = 0
    for i, item in enumerate(items, 1):
        yield item
        now = time.perf_counter()
        if now - last >= every_s and (total is None or i < total):
            print(f"{desc}: {i}/{total or '?'} ({now - t0:.0f} s)", file=sys.stderr, flush=True)
            last = now
    if i and last > t0:
        print(f"{desc}: {i}/{total or i} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
