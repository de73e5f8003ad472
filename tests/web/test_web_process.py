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
