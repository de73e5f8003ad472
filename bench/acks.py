"""Counting acknowledgements in worker processes, readable from outside them.

Each Dramatiq worker process maps a tiny file ``acks-<pid>`` (in ``BENCH_ACK_DIR``)
and stores its ack count there after every ack: a memory store, so the floor pays
next to nothing for being observed. The bench sums the files.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from pathlib import Path
from typing import Any

import dramatiq

_SLOT = struct.Struct("<q")


class AckCounter(dramatiq.Middleware):  # type: ignore[misc]
    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory or os.environ.get("BENCH_ACK_DIR", "")
        self._lock = threading.Lock()
        self._count = 0
        self._map: mmap.mmap | None = None

    def _open(self) -> mmap.mmap | None:
        if self._map is None and self.directory:
            path = Path(self.directory) / f"acks-{os.getpid()}"
            with path.open("w+b") as file:
                file.write(b"\0" * _SLOT.size)
                file.flush()
                self._map = mmap.mmap(file.fileno(), _SLOT.size)
        return self._map

    def after_process_boot(self, broker: Any) -> None:
        self._count = 0
        self._map = None
        self._open()

    def after_ack(self, broker: Any, message: Any) -> None:
        with self._lock:
            self._count += 1
            target = self._open()
            if target is not None:
                _SLOT.pack_into(target, 0, self._count)


def total_acks(directory: Path) -> int:
    total = 0
    for path in directory.glob("acks-*"):
        data = path.read_bytes()
        if len(data) >= _SLOT.size:
            total += _SLOT.unpack_from(data)[0]
    return total
