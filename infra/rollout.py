"""How long one step of a NATS server roll may take, and the Helm release timeout that covers it.

A roll of the StatefulSet (a chart upgrade, a restart fingerprint change) replaces the servers
one at a time: the next server stops only when the new one is Ready. The release waits for all
of them (`atomic`: a timeout rolls the release back, which is another roll), so its timeout must
cover the whole roll. tests/test_rollout_facts.py holds the sources of every figure here and
checks the chart's against the chart as rendered in tests/golden/.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import Cloud
from infra.endpoint import HEALTH_CHECK_INTERVAL_SECONDS, HEALTHY_THRESHOLD

# The NATS chart (2.14.2, tests/golden/*.stateful-set.yaml): the kubelet kills a stopping server
# at the termination grace, so the old pod is gone by then; a new server that starts at once is
# Ready at its startup probe's first check plus one readiness period.
CHART_TERMINATION_GRACE_SECONDS = 60
CHART_STARTUP_PROBE_DELAY_SECONDS = 10
CHART_READINESS_PROBE_PERIOD_SECONDS = 10

# AWS only, where each new pod carries the load balancer controller's readiness gate. A new IP
# target stays `initial` (registration in progress) before the NLB starts checking it: 4-5 min
# (controller maintainer, issue #1786), 180-300 s (AWS support, quoted in issue #1834).
NLB_REGISTRATION_SECONDS = 300
# The controller looks at a not-yet-healthy target again this often (v2.13.0
# pkg/targetgroupbinding/resource_manager.go defaultRequeueDuration): the gate turns true at the
# first look after the target is healthy.
CONTROLLER_REQUEUE_SECONDS = 15

# Never below what the first install needs and always had: volumes, images, a JetStream meta
# leader, a new load balancer.
RELEASE_TIMEOUT_FLOOR_SECONDS = 900


@dataclass(frozen=True)
class RollStep:
    """The worst case of one step, in the order it happens."""

    stop: int
    start: int
    registration: int
    health_checks: int
    gate: int

    @property
    def seconds(self) -> int:
        return self.stop + self.start + self.registration + self.health_checks + self.gate


def roll_step(cloud: Cloud) -> RollStep:
    """Azure's load balancer targets the nodes and kube-proxy follows pod readiness, so a step
    is the chart's stop and start; on AWS the new pod is Ready only once its NLB target is."""
    aws = cloud == "aws"
    return RollStep(
        stop=CHART_TERMINATION_GRACE_SECONDS,
        start=CHART_STARTUP_PROBE_DELAY_SECONDS + CHART_READINESS_PROBE_PERIOD_SECONDS,
        registration=NLB_REGISTRATION_SECONDS if aws else 0,
        health_checks=HEALTHY_THRESHOLD * HEALTH_CHECK_INTERVAL_SECONDS if aws else 0,
        gate=CONTROLLER_REQUEUE_SECONDS if aws else 0,
    )


def release_timeout_seconds(cloud: Cloud, replicas: int) -> int:
    """A roll of `replicas` servers gets one worst step more than it has servers: the margin
    covers what a step leaves out (scheduling, a volume moving to another node, an image pull on
    a new node, Helm's polling)."""
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    return max(RELEASE_TIMEOUT_FLOOR_SECONDS, (replicas + 1) * roll_step(cloud).seconds)
