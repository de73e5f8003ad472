"""`paylink run` starts the link page beside the workers, as `paylink web` would."""

from __future__ import annotations

from workers.processes.supervisor import children
from workers.settings import Settings


def test_paylink_run_starts_the_link_page() -> None:
    # Given the embedded default settings
    settings = Settings()

    # When `paylink run` decides what to start (with and without the exporter)
    started = [children(settings), children(settings, exporter=False)]

    # Then each includes one `paylink web` process
    for procs in started:
        (web,) = [p for p in procs if p.name == "web"]
        assert web.argv[-3:] == ["-m", "workers.cli", "web"]


def test_demo_links_point_at_the_page_paylink_web_serves() -> None:
    # Given no configuration
    settings = Settings()

    # Then a link is {base}/{token} on the address the page listens on
    assert settings.checkout_base_url == f"http://{settings.web_host}:{settings.web_port}/l"


def test_the_demo_asks_the_local_outbox_to_report_deliveries() -> None:
    # Given the embedded default settings (reports off)
    settings = Settings()
    assert not settings.local_outbox_reports

    # When `paylink run` starts with and without the demo
    plain, demo = children(settings), children(settings, demo=True)

    # Then only the demo's workers report deliveries (so its timelines show them)
    (worker,) = [p for p in plain if p.name == "worker"]
    (demo_worker,) = [p for p in demo if p.name == "worker"]
    assert "PAYLINK_LOCAL_OUTBOX_REPORTS" not in worker.env
    assert demo_worker.env["PAYLINK_LOCAL_OUTBOX_REPORTS"] == "true"
