"""A check that fails during `make bench` is reported and the run goes on."""

from __future__ import annotations

from pathlib import Path

from bench.cli import render
from bench.scenarios import Config, Results, Run


def _run(printed: list[str]) -> tuple[Run, Results]:
    cfg = Config(
        processes=1,
        threads=1,
        reps=1,
        floor_n=10,
        create_n=10,
        lifecycle_n=10,
        latency_seconds=1,
        expiry_n=10,
        pending_n=10,
        soak_minutes=0,
        workdir=Path("unused"),
    )
    results = Results()
    return Run(cfg, results, printed.append), results


def test_a_failed_check_is_recorded_printed_and_does_not_stop_the_run() -> None:
    # Given a bench run
    printed: list[str] = []
    run, results = _run(printed)

    # When a check fails and another passes
    failed = run.check(False, "floor 2: 3 messages still ready on bench.insert")
    passed = run.check(True, "never reported")

    # Then the failure is returned, printed and kept; the passing check leaves no trace
    assert (failed, passed) == (False, True)
    assert results.anomalies == ["floor 2: 3 messages still ready on bench.insert"]
    assert any("3 messages still ready" in line for line in printed)


def test_anomalies_are_written_into_the_results_file() -> None:
    # Given a run that recorded an anomaly
    printed: list[str] = []
    run, results = _run(printed)
    run.check(False, "create+send: 99 links sent of 100 created")

    # When the results are rendered
    text = render(results, [("host", "test")], elapsed=60)

    # Then they list it under their own heading
    assert "## Anomalies\n\n- create+send: 99 links sent of 100 created" in text


def test_a_run_without_anomalies_has_no_anomalies_section() -> None:
    assert "Anomalies" not in render(Results(), [], elapsed=1)
