"""Built-in signals: names users write instead of PromQL, and the PromQL each compiles to.

The table itself is :mod:`fleetmon.signals`, shared with the recording rules the dashboards
read (prometheus/rules/recording.yml is generated from it), so an alert and a panel on the
same quantity agree. Each signal has an *instant* expression built from a host selector
``{sel}`` and, for counter-based signals, a rate range ``{r}``. ``rulesync.generate`` turns
it into an aggregate over the rule's window. Every expression keeps ``instance`` and the host
labels (``datacenter``, ``role``, ``env`` and any label the rule's selector uses) as
``{by}``, so Alertmanager and the router see them on every alert.
"""

from __future__ import annotations

from fleetmon.signals import HOST_LABELS, RECORDED_KEEPS, SIGNALS, Recorded, Signal, reused_records

__all__ = ["HOST_LABELS", "RECORDED_KEEPS", "SIGNALS", "Recorded", "Signal", "reused_records"]
