"""Every metric name the dashboard and alert rules may use.

paylink_* and dramatiq_* are copied from docs/architecture.md (a test checks the copy
against the document; whether the service really exports them is for the service's tests).
rabbitmq_* are a selection of the names read off RabbitMQ 3.10.8 with rabbitmq_prometheus on:
`curl -s localhost:15692/metrics | grep -o '^rabbitmq_[a-z_]*' | sort -u`, and the per-queue
rabbitmq_detailed_queue_* of `/metrics/detailed?family=queue_coarse_metrics&family=
queue_consumer_count` (deploy/prometheus/prometheus.yml scrapes both; /metrics/per-object
does not serve rabbitmq_alarms_*).
"""

from __future__ import annotations

PAYLINK_METRICS = frozenset(
    {
        "paylink_exporter_up",
        "paylink_exporter_scrape_errors_total",
        "paylink_outbox_backlog",
        "paylink_outbox_oldest_unsent_age_seconds",
        "paylink_expiries_pending",
        "paylink_expiries_overdue",
        "paylink_orders_created_total",
        "paylink_orders_rejected_total",
        "paylink_links_sent_total",
        "paylink_link_delivery_failures_total",
        "paylink_link_deliveries_total",
        "paylink_links_expired_total",
        "paylink_captured_minor_units_total",
        "paylink_refunded_minor_units_total",
        "paylink_captures_total",
        "paylink_refunds_total",
        "paylink_uncertain_sends_total",
        "paylink_relay_published_total",
        "paylink_relay_batch_size",
        "paylink_relay_lag_seconds",
        "paylink_relay_partitions_held",
        "paylink_relay_partitions",
        "paylink_relay_last_poll_timestamp_seconds",
        "paylink_scheduler_released_total",
        "paylink_scheduler_last_tick_timestamp_seconds",
        "paylink_scheduler_pruned_total",
    }
)

DRAMATIQ_METRICS = frozenset(
    {
        "dramatiq_messages_total",
        "dramatiq_message_errors_total",
        "dramatiq_message_retries_total",
        "dramatiq_message_rejects_total",
        "dramatiq_messages_inprogress",
        "dramatiq_message_duration_milliseconds",
    }
)

#: Histograms, exposed as <name>_bucket, <name>_sum and <name>_count.
HISTOGRAMS = frozenset({"dramatiq_message_duration_milliseconds", "paylink_relay_batch_size"})

RABBITMQ_METRICS = frozenset(
    {
        "rabbitmq_alarms_file_descriptor_limit",
        "rabbitmq_alarms_free_disk_space_watermark",
        "rabbitmq_alarms_memory_used_watermark",
        "rabbitmq_auth_attempts_failed_total",
        "rabbitmq_auth_attempts_succeeded_total",
        "rabbitmq_auth_attempts_total",
        "rabbitmq_build_info",
        "rabbitmq_channel_consumers",
        "rabbitmq_channel_messages_acked_total",
        "rabbitmq_channel_messages_confirmed_total",
        "rabbitmq_channel_messages_delivered_ack_total",
        "rabbitmq_channel_messages_delivered_total",
        "rabbitmq_channel_messages_published_total",
        "rabbitmq_channel_messages_redelivered_total",
        "rabbitmq_channel_messages_unacked",
        "rabbitmq_channel_messages_unconfirmed",
        "rabbitmq_channel_messages_unroutable_dropped_total",
        "rabbitmq_channel_messages_unroutable_returned_total",
        "rabbitmq_channels",
        "rabbitmq_connections",
        "rabbitmq_connections_closed_total",
        "rabbitmq_connections_opened_total",
        "rabbitmq_consumers",
        "rabbitmq_detailed_queue_consumers",
        "rabbitmq_detailed_queue_messages",
        "rabbitmq_detailed_queue_messages_ready",
        "rabbitmq_detailed_queue_messages_unacked",
        "rabbitmq_disk_space_available_bytes",
        "rabbitmq_disk_space_available_limit_bytes",
        "rabbitmq_global_consumers",
        "rabbitmq_global_messages_acknowledged_total",
        "rabbitmq_global_messages_confirmed_total",
        "rabbitmq_global_messages_dead_lettered_confirmed_total",
        "rabbitmq_global_messages_dead_lettered_delivery_limit_total",
        "rabbitmq_global_messages_dead_lettered_expired_total",
        "rabbitmq_global_messages_dead_lettered_maxlen_total",
        "rabbitmq_global_messages_dead_lettered_rejected_total",
        "rabbitmq_global_messages_delivered_total",
        "rabbitmq_global_messages_received_confirm_total",
        "rabbitmq_global_messages_received_total",
        "rabbitmq_global_messages_redelivered_total",
        "rabbitmq_global_messages_routed_total",
        "rabbitmq_global_messages_unroutable_dropped_total",
        "rabbitmq_global_messages_unroutable_returned_total",
        "rabbitmq_global_publishers",
        "rabbitmq_identity_info",
        "rabbitmq_process_max_fds",
        "rabbitmq_process_open_fds",
        "rabbitmq_process_resident_memory_bytes",
        "rabbitmq_queue_consumer_utilisation",
        "rabbitmq_queue_consumers",
        "rabbitmq_queue_messages",
        "rabbitmq_queue_messages_bytes",
        "rabbitmq_queue_messages_published_total",
        "rabbitmq_queue_messages_ready",
        "rabbitmq_queue_messages_ready_bytes",
        "rabbitmq_queue_messages_unacked",
        "rabbitmq_queue_messages_unacked_bytes",
        "rabbitmq_queues",
        "rabbitmq_queues_created_total",
        "rabbitmq_queues_declared_total",
        "rabbitmq_queues_deleted_total",
        "rabbitmq_raft_entry_commit_latency_seconds",
        "rabbitmq_raft_log_commit_index",
        "rabbitmq_raft_log_last_applied_index",
        "rabbitmq_raft_term_total",
        "rabbitmq_resident_memory_limit_bytes",
    }
)

#: Series Prometheus adds to every scrape target itself.
PROMETHEUS_METRICS = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})


def known_metric_names() -> frozenset[str]:
    """The names above plus the series Prometheus derives from them."""
    derived = {f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
    created = {
        name.removesuffix("_total") + "_created"
        for name in PAYLINK_METRICS | DRAMATIQ_METRICS
        if name.endswith("_total")
    }
    return (
        PAYLINK_METRICS
        | DRAMATIQ_METRICS
        | RABBITMQ_METRICS
        | PROMETHEUS_METRICS
        | derived
        | created
    )
