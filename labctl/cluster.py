"""The three-node cluster (compose.cluster.yaml) as the broker tells it, through
rabbitmqctl and rabbitmq-queues --formatter json on any node that runs."""

import json
import subprocess

from labctl.docker import output

NODES = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")
# A member answers with one of these Raft states while its node runs; a node that is
# gone shows noconnection (RabbitMQ 4.3) or {nodedown,...} (a stopped node on 4.0).
UP = {"leader", "follower", "candidate", "pre_vote", "await_condition", "receive_snapshot"}


def ctl(*args):
    """rabbitmqctl or rabbitmq-queues ARGS on the first node that runs, as JSON; None if none answers."""
    for node in NODES:
        if output("compose", "ps", "--status", "running", "--quiet", node).strip():
            result = subprocess.run(["docker", "compose", "exec", "-T", node, *args, "--formatter", "json", "--silent"],
                                    capture_output=True, text=True, stdin=subprocess.DEVNULL)  # fmt: skip
            try:
                return json.loads(result.stdout) if result.returncode == 0 else None
            except ValueError:
                return None
    return None


def node_name(erlang_node):
    """rabbit@rabbitmq-2 -> rabbitmq-2"""
    return str(erlang_node).removeprefix("rabbit@")


def leader():
    """The node that leads task_queue, e.g. rabbitmq-2, or None."""
    for queue in ctl("rabbitmqctl", "list_queues", "name", "leader") or []:
        if queue.get("name") == "task_queue" and queue.get("leader"):
            return node_name(queue["leader"])
    return None


def members():
    """task_queue's members: [(node, Raft state, commit index)]."""
    status = ctl("rabbitmq-queues", "quorum_status", "task_queue") or []
    return [(node_name(each.get("Node Name")), str(each.get("Raft State")), each.get("Commit Index"))
            for each in status]  # fmt: skip


def in_sync():
    """Three members up, one of them leader, the same commit index on each."""
    now = [member for member in members() if member[1] in ("leader", "follower")]
    leaders = [member for member in now if member[1] == "leader"]
    return len(now) == 3 and len(leaders) == 1 and len({member[2] for member in now}) == 1


def members_table():
    lines = [f"  {'member':<20} {'state':<16} commit index"]
    return "\n".join(lines + [f"  {node:<20} {state:<16} {commit}" for node, state, commit in members()])


def workers_by_node():
    """{worker: node} for the lab's workers connected now, from the broker's connections
    (connection_name) and the node address each connection reached."""
    addresses = {}
    for node in NODES:
        container = output("compose", "ps", "--quiet", node).strip()
        if container:
            networks = output("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                              container)  # fmt: skip
            addresses.update(dict.fromkeys(networks.split(), node))
    workers = {}
    for connection in ctl("rabbitmqctl", "list_connections", "name", "client_properties") or []:
        name = dict((key, value) for key, _, value in connection.get("client_properties", [])).get("connection_name")
        reached = str(connection.get("name", "")).rpartition(" -> ")[2].rpartition(":")[0]
        if isinstance(name, str) and name.startswith("consumer-") and reached in addresses:
            workers[name] = addresses[reached]
    return workers
