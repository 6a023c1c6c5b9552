"""The broker's per-queue figures from its Prometheus endpoint (the rabbitmq_prometheus
plugin the broker image enables): what the lab's tools read instead of the management
plugin's metrics, a deprecated feature on RabbitMQ 4.x. A quorum queue's figures there
follow its tick: up to 5 s behind (measured on 4.3.6)."""

import re
import urllib.request

PROMETHEUS_PORT = 15692  # inside the Compose network only
QUEUE_METRICS = "/metrics/detailed?vhost=%2F&family=queue_coarse_metrics"
MAX_METRICS_BYTES = 1 << 20
FIGURE = re.compile(r'^rabbitmq_detailed_queue_(\w+)\{vhost="/",queue="([^"]+)"\} ([\d.e+]+)$', re.MULTILINE)


def queue_figures(metrics):
    """{queue: {"messages_ready": n, "messages_unacked": n, "messages": n}} from the endpoint's text."""
    figures = {}
    for name, queue, value in FIGURE.findall(metrics):
        figures.setdefault(queue, {})[name] = int(float(value))
    return figures


def fetch_queue_figures(host):
    """queue_figures of the broker at `host`; {} when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{PROMETHEUS_PORT}{QUEUE_METRICS}", timeout=2) as response:
            return queue_figures(response.read(MAX_METRICS_BYTES).decode(errors="replace"))
    except (OSError, ValueError):
        return {}
