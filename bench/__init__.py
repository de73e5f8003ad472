"""Benchmarks against the broker's floor: ``python -m bench`` (``make bench``).

One command, one run: the floors (a no-op Dramatiq actor; one PostgreSQL INSERT per
message), paylink's throughput, full lifecycle, latency at half the maximum rate,
due-expiry throughput, scheduler cost and memory with a million pending links, and
worker memory over a soak. Every figure is the median of repetitions in the same run,
on the same broker, database and worker settings; results go to ``bench/results.md``.

This machine's speed drifts by 10-20 % within minutes, and the floors section runs
minutes before the create-order section. So, when both run, the floor-2 worker is
kept up and each create+send rep follows a floor-2 rep of its own: the per-pair ratio
(and its median) compares two measurements taken a minute apart. The idle paylink
stack's CPU during those floor reps is reported beside them.
"""
