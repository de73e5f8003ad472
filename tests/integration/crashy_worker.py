"""The real actors, plus a fault: SIGKILL the worker right after a command committed.

Loaded by the Dramatiq CLI instead of ``workers.runtime.actors`` in fault tests. The kill
happens once per marker file (``PAYLINK_TEST_KILL_MARKER``), after the handler's
transaction committed and before the message is acknowledged.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import dramatiq

from workers.runtime.actors import broker

MARKER = Path(os.environ.get("PAYLINK_TEST_KILL_MARKER", "/nonexistent"))
ACTOR = os.environ.get("PAYLINK_TEST_KILL_ACTOR", "capture_payment")


class KillAfterCommit(dramatiq.Middleware):
    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        if message.actor_name == ACTOR and exception is None:
            try:
                MARKER.unlink()
            except FileNotFoundError:
                return
            os.kill(os.getpid(), signal.SIGKILL)


broker.add_middleware(KillAfterCommit())
