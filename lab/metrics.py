"""The broker's per-queue figures and its resource alarms from its Prometheus endpoint
(the rabbitmq_prometheus plugin the broker image enables): what the lab's tools read
instead of the management plugin's metrics, a deprecated feature on RabbitMQ 4.x. A quorum queue's figures there
follow its tick: up to 5 s behind (measured on 4.3.6)."""

import re
import urllib.request

PROMETHEUS_PORT = 15692  # inside the Compose network only
QUEUE_METRICS = "/metrics/detailed?vhost=%2F&family=queue_coarse_metrics"
MAX_METRICS_BYTES = 1 << 20
ALARMS_METRICS = "/metrics"
ALARM = re.compile(r"^rabbitmq_alarms_(memory_used_watermark|free_disk_space_watermark) 1$", re.MULTILINE)
ALARM_NAMES = {"memory_used_watermark": "memory", "free_disk_space_watermark": "disk"}
FIGURE = re.compile(r'^rabbitmq_detailed_queue_(\w+)\{vhost="/",queue="([^"]+)"\} ([\d.e+]+)$', re.MULTILINE)


def queue_figures(metrics):
    """{queue: {"messages_ready": n, "messages_unacked": n, "messages": n}} from the endpoint's text."""
    figures = {}
    for name, queue, value in FIGURE.findall(metrics):
        figures.setdefault(queue, {})[name] = int(float(value))
    return figures


def alarms(metrics):
    """The resource alarms in effect ("memory", "disk") from the endpoint's text."""
    return [ALARM_NAMES[name] for name in ALARM.findall(metrics)]


def fetch_queue_figures(host):
    """queue_figures of the broker at `host`; {} when it does not answer."""
    text = fetch(host, QUEUE_METRICS)
    return {} if text is None else queue_figures(text)


def fetch_alarms(host):
    """alarms of the broker at `host`; None when it does not answer."""
    text = fetch(host, ALARMS_METRICS)
    return None if text is None else alarms(text)


def fetch(host, path):
    try:
        with urllib.request.urlopen(f"http://{host}:{PROMETHEUS_PORT}{path}", timeout=2) as response:
            return response.read(MAX_METRICS_BYTES).decode(errors="replace")
    except (OSError, ValueError):
        return None
