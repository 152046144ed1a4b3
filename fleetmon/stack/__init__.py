"""Fleet in a box: the whole fleetmon system on loopback, for `make run` / `make stop` / `make status`.

Every part runs as a plain process with its pid file, log and state under ``.run/``:
ZooKeeper; two Prometheus shards, each with its ``fleet-discovery run`` sidecar (which also
runs the rulesync agent), shard ``a`` as an HA pair (replicas r1 and r2, both scraping every
host of the shard); the global Prometheus with console templates, fed by
``fleet-discovery global``; a 2-member Alertmanager gossip cluster (``prometheus/alertmanager.yml``,
every member posting to both routers); two alert-routers coordinating deliveries through
ZooKeeper (``--zk``); a local SMTP server with a mailbox page; the exporter for this
machine; the host simulator playing ``stack/scenario.yaml``; then ``rulesync apply
stack/rules.yaml``. Ports come from ``FLEETMON_PORT_<NAME>`` environment variables.

    python -m fleetmon.stack start|stop|status
    python -m fleetmon.stack mailbox --smtp-port P --http-port Q --maildir DIR   (internal)

| module | its one job |
| --- | --- |
| ``layout`` | the run directory, the loopback host, each component's port, shards, replicas, pairs |
| ``plan`` | the process table: which processes ``start`` runs, in order, and what is missing |
| ``processes`` | starting and stopping by PID, pid files, logs, one-shot steps |
| ``configs`` | the config files written for the stack (ZooKeeper, Prometheus, Alertmanager, routers, TLS) |
| ``health`` | readiness and health checks, ``status``, the URLs printed once up |
| ``alertstate`` | the last run's alerting state, removed at ``start`` |
| ``mailbox`` | the local SMTP server and its mailbox page |
| ``cli`` | the command line, wiring the above |
"""

from fleetmon.stack.cli import main
from fleetmon.stack.layout import DEFAULT_PORTS, REPO, RUN, StackError, port_env, ports
from fleetmon.stack.processes import child_env, py

__all__ = ["DEFAULT_PORTS", "REPO", "RUN", "StackError", "child_env", "main", "port_env", "ports", "py"]
