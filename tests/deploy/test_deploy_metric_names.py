"""The known metric names are the documented ones, and the name extractor finds them."""

from __future__ import annotations

import inspect
import re

import dramatiq.middleware.prometheus as dramatiq_prometheus
import pytest
from deploy_contract import ARCHITECTURE
from known_metrics import DRAMATIQ_METRICS, PAYLINK_METRICS, known_metric_names
from promql_names import metric_names

_ARCHITECTURE = ARCHITECTURE.read_text(encoding="utf-8")
#: The metrics sections of docs/architecture.md (other sections name options and users
#: that look alike, such as a message option `paylink_publisher`).
DOC = _ARCHITECTURE[
    _ARCHITECTURE.index("### paylink metrics") : _ARCHITECTURE.index("## How a command flows")
]


def test_paylink_metrics_are_exactly_those_in_the_architecture() -> None:
    assert set(re.findall(r"`(paylink_[a-z_]+)`", DOC)) == PAYLINK_METRICS


def test_dramatiq_metrics_are_exactly_those_in_the_architecture() -> None:
    assert set(re.findall(r"`(dramatiq_[a-z_]+)`", DOC)) == DRAMATIQ_METRICS


def test_dramatiq_middleware_really_exports_the_dramatiq_metrics() -> None:
    source = inspect.getsource(dramatiq_prometheus)

    for name in DRAMATIQ_METRICS:
        assert f'"{name}"' in source


def test_histogram_series_and_created_series_are_known() -> None:
    known = known_metric_names()

    assert "dramatiq_message_duration_milliseconds_bucket" in known
    assert "paylink_orders_created_created" in known
    assert "paylink_outbox_backlog_bucket" not in known


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'rabbitmq_detailed_queue_messages_ready{vhost="paylink", queue=~"$queue"} > 1000',
            {"rabbitmq_detailed_queue_messages_ready"},
        ),
        (
            "histogram_quantile(0.95, sum by (le, actor_name) "
            "(rate(dramatiq_message_duration_milliseconds_bucket[$__rate_interval])))",
            {"dramatiq_message_duration_milliseconds_bucket"},
        ),
        (
            "sum(rate(a_total[5m])) by (code) / ignoring(code) group_left b offset 5m > bool 1e3",
            {"a_total", "b"},
        ),
        ('up{job=~"paylink-.*"} == 0 and on(instance) c', {"up", "c"}),
        ("max(x) or vector(0)", {"x"}),
    ],
)
def test_metric_names_reads_only_series_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_metric_names_refuses_selection_by_name_label() -> None:
    with pytest.raises(ValueError, match="__name__"):
        metric_names('{__name__=~"paylink_.*"}')
