"""What `paylink worker` execs: Dramatiq's own CLI, logging through paylink's JSON renderer.

Dramatiq's main process would otherwise log in its own text format (``--skip-logging``
turns that off); configured here before it forks, every process of the pool writes
the same masked JSON lines.
"""

from __future__ import annotations

import sys


def main() -> int:
    from dramatiq.cli import main as dramatiq_main

    from workers.observability import configure_logging
    from workers.settings import get_settings

    configure_logging(get_settings())
    return int(dramatiq_main() or 0)  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    sys.exit(main())
