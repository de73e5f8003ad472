"""What the tests and the benchmarks share: scratch databases and vhosts, queue purges,
a real paylink run as subprocesses, commands built as an upstream would.

No production process imports it; it lives in the project so that bench/ need not
import tests/.
"""

from __future__ import annotations
