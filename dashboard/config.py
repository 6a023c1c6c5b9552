"""The dashboard's settings, read from the environment in one place."""

import os
from dataclasses import dataclass
from urllib.parse import quote

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(address):
    return address in LOOPBACK or address.startswith("127.")


@dataclass(frozen=True)
class Config:
    hosts: tuple  # the broker, or a cluster's nodes: the dashboard follows the first that answers
    port: int
    user: str
    password: str
    bind_address: str
    address: str  # where a browser on the host finds the page
    timelines: str

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env
        hosts = [host.strip() for host in env.get("RABBITMQ_HOSTS", "").split(",") if host.strip()]
        bind = env.get("LAB_BIND_ADDRESS", "127.0.0.1")
        shown_host = "localhost" if is_loopback(bind) or bind == "0.0.0.0" else bind
        return cls(
            hosts=tuple(hosts or [env.get("RABBITMQ_HOST") or "rabbitmq"]),
            port=int(env.get("RABBITMQ_PORT", "5672")),
            user=env["RABBITMQ_DEFAULT_USER"],
            password=env["RABBITMQ_DEFAULT_PASS"],
            bind_address=bind,
            address=f"http://{shown_host}:{env.get('DASHBOARD_PORT', 8080)}",
            timelines=env.get("TIMELINES", "/app/timelines"),
        )

    @property
    def login(self):
        return f"{self.user}:{self.password}"

    @property
    def beyond_loopback(self):
        return not is_loopback(self.bind_address)

    def amqp_url(self, host):
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        # A short heartbeat: a node that vanishes without closing the socket is noticed in seconds.
        return f"amqp://{user}:{password}@{host}:{self.port}/?heartbeat=5"

    def refusal(self):
        """Why the dashboard must not start with these settings, or None (start-broker.sh's rule)."""
        if self.beyond_loopback and "guest" in (self.user, self.password):
            return (
                f"dashboard: refusing to start: LAB_BIND_ADDRESS={self.bind_address} publishes the page beyond "
                "this machine while the login is still guest; set RABBITMQ_DEFAULT_USER and "
                "RABBITMQ_DEFAULT_PASS in .env to your own (neither guest), or LAB_BIND_ADDRESS=127.0.0.1"
            )
        return None
