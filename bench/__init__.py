"""Benchmarks against the broker's floor: ``python -m bench`` (``make bench``).

One command, one run: the floors (a no-op Dramatiq actor; one PostgreSQL INSERT per
message), paylink's throughput, full lifecycle, latency at half the maximum rate,
due-expiry throughput, scheduler cost and memory with a million pending links, and
worker memory over a soak. Every figure is the median of repetitions in the same run,
on the same broker, database and worker settings; results go to ``bench/results.md``.
"""
