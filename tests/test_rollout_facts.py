"""Rollouts keep the load balancer serving: the upstream facts the program's load balancer
settings rest on, each with its source, and the program's values checked against them.

Sources (paraphrased, not copied):
- AWS Load Balancer Controller, kubernetes-sigs/aws-load-balancer-controller tag v2.13.0 (the
  version chart 1.13.0 installs):
  - docs/deploy/pod_readiness_gate.md: the namespace label
    `elbv2.k8s.aws/pod-readiness-gate-inject: enabled` makes the pod webhook add a readiness gate
    that turns true only when the pod's target is Healthy in the target group; only for IP
    targets; only at pod creation, and only when a Service selecting the pod and a
    TargetGroupBinding for it exist, so the label and the Service must come before the pods;
    the webhook's failurePolicy is Ignore from v2.11.1 on (pods are created without the gate
    while the controller is down).
  - controllers/service/service_controller.go (reconcileLoadBalancerResources): the model,
    TargetGroupBinding included (pkg/deploy/stack_deployer.go:117), is deployed before the
    Service's status gets the load balancer's name: a Service with an address has its binding.
  - docs/guide/service/annotations.md: health-check defaults TCP on the traffic port, interval
    10 s, timeout 10 s, healthy and unhealthy thresholds 3; target group attributes through
    `aws-load-balancer-target-group-attributes`, deregistration delay 0-3600 s.
- AWS ELB API reference (CreateTargetGroup, docs.aws.amazon.com/elasticloadbalancing/latest/
  APIReference/API_CreateTargetGroup.html): for a TCP health check the thresholds range 2-10 and
  the interval 5-300 s.
- NATS chart, nats-io/k8s helm/charts/nats at chart version 2.14.2 (commit 957650f), rendered
  here into tests/golden/ by tools/chart_golden.py: terminationGracePeriodSeconds 60
  (files/stateful-set/pod-template.yaml), preStop sends lame duck mode (`-sl=ldm`,
  files/stateful-set/nats-container.yaml), lame_duck_grace_period 10s and lame_duck_duration
  30s (files/config/config.yaml).
- nats-server v2.14.2 server/server.go lameDuckMode: the client listener is closed first (no new
  client is accepted), then the clients are closed spread over lame_duck_duration minus the
  grace period, after that grace period, so all within lame_duck_duration; server/signal.go:
  a SIGTERM while in lame duck mode is ignored (the kubelet's SIGTERM after preStop does not cut
  the drain short); server/server.go:1138 requires the grace period below the duration.
- cloud-provider-azure v1.36.5 pkg/consts/consts.go: the health probe annotations
  `service.beta.kubernetes.io/azure-load-balancer-health-probe-{protocol,interval,num-of-probe,
  request-path}`, probe defaults interval 5 s and 2 probes; for externalTrafficPolicy Cluster
  the probe is TCP (consts.go, on the protocol annotation) and targets the nodes' NodePort
  (health probe mode `servicenodeport`, the default when unset: pkg/provider/azure.go:323),
  not the pods.

How long a step of a roll waits (infra/rollout.py), the sources:
- Kubernetes docs, concepts/workloads/controllers/statefulset.md ("Rolling Updates", "Parallel Pod
  Management"): a RollingUpdate replaces one pod at a time, from the highest ordinal down, and
  waits for the new pod to be Running and Ready before the next; podManagementPolicy Parallel
  changes scaling only, not updates.
- AWS Load Balancer Controller v2.13.0 (commit f4f3c580):
  - pkg/backend/endpoint_resolver.go:185: a pod that is not Ready only because of its gate is
    registered once its containers are ready (the chart's readiness probe passed), not before:
    the server's start and the target's registration follow one another.
  - pkg/targetgroupbinding/resource_manager.go: the gate's condition is True only for a target
    whose state is `healthy` (calculateReadinessGateTransition, :496); a pod not registered yet
    reads `initial` / Elb.RegistrationInProgress (:412); while any gated pod's target is not
    healthy the binding is looked at again after defaultRequeueDuration, 15 s (:34, :267).
  - pkg/runtime/reconcile.go:18: that look is a plain RequeueAfter; only a failing reconcile
    backs off, exponentially up to 1000 s (controllers/elbv2/targetgroupbinding_controller.go:223,
    pkg/config/controller_config.go:39, flag targetgroupbinding-max-exponential-backoff-delay).
  - pkg/inject/pod_readiness_gate.go: the webhook gives a pod one gate per IP
    TargetGroupBinding whose Service selects it, so the NATS pods get two (one target group per
    port), which the controller reconciles side by side.
  - pkg/metrics/lbc/instruments.go:14: the controller's histogram
    `awslbc_readiness_gate_ready_seconds` (buckets up to 600 s, :55) times each gate's flip.
- How long a new NLB IP target stays `initial` before health checks start:
  kubernetes-sigs/aws-load-balancer-controller#1786 (closed 2021): the maintainer (M00nF1sh)
  answers that a target registered into an NLB target group takes 4-5 minutes to become ready, a
  delay on the NLB side; #1834 (open): AWS support, quoted in 2023, expects registration to take
  180-300 s, after which the health checks must pass (threshold x interval); a 2024 comment says
  it should be faster now, without a figure; #4180 (closed, controller v2.13, 2025): targets
  healthy in the console after about a minute while the gate turned true up to about 10 minutes
  later (the thread's excerpt in our corpus holds no maintainer answer), an outlier past any
  step budget here (a controller in failure backoff, above, would look the same).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import endpoint, rollout
from infra.config import Cloud
from infra.endpoint import (
    AWS_LB_ANNOTATIONS,
    READINESS_GATE_INJECT,
    lb_annotations,
    namespace_labels,
)
from infra.nats_conf import render_nats_conf
from infra.nats_values import chart_values
from infra.rollout import RollStep, release_timeout_seconds, roll_step
from infra.versions import AWS_LB_CONTROLLER_CHART_VERSION
from tests.chart_cases import CHART_CASES

GOLDEN = Path(__file__).parent / "golden"
AWS = "service.beta.kubernetes.io/aws-load-balancer-"

# annotations.md v2.13.0, "Health Check": the controller's defaults.
CONTROLLER_DEFAULTS = {"interval": 10, "timeout": 10, "healthy": 3, "unhealthy": 3}
# AWS ELB API, CreateTargetGroup, TCP health checks.
THRESHOLD_RANGE = range(2, 11)
INTERVAL_RANGE = range(5, 301)
DEREGISTRATION_RANGE = range(0, 3601)
# cloud-provider-azure v1.36.5 pkg/consts/consts.go
AZURE_PROBE_DEFAULT_INTERVAL_SECONDS = 5
AZURE_PROBE_DEFAULT_NUM_OF_PROBE = 2
AZURE_PROBE_ANNOTATION_PREFIX = "service.beta.kubernetes.io/azure-load-balancer-health-probe-"


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return int(match.group(1))


def _chart_shutdown(case: str) -> tuple[int, int, int]:
    """(lame duck grace, lame duck duration, termination grace) as the real chart rendered."""
    conf = json.loads((GOLDEN / f"{case}.json").read_text())
    pod = json.loads((GOLDEN / f"{case}.pod.json").read_text())
    return (
        _seconds(conf["lame_duck_grace_period"]),
        _seconds(conf["lame_duck_duration"]),
        int(pod["termination_grace_period_seconds"]),
    )


def _attributes() -> dict[str, str]:
    raw = AWS_LB_ANNOTATIONS[f"{AWS}target-group-attributes"]
    return dict(pair.split("=", 1) for pair in raw.split(","))


def test_the_facts_are_for_the_pinned_controller_and_chart() -> None:
    assert AWS_LB_CONTROLLER_CHART_VERSION == "1.13.0"  # controller v2.13.0
    assert json.loads((GOLDEN / "east.pod.json").read_text())["pre_stop"] == {
        "exec": {"command": ["nats-server", "-sl=ldm=/var/run/nats/nats.pid"]}
    }


def test_readiness_gates_are_injected_on_aws_only() -> None:
    assert READINESS_GATE_INJECT == "elbv2.k8s.aws/pod-readiness-gate-inject"
    assert namespace_labels("aws") == {READINESS_GATE_INJECT: "enabled"}
    assert namespace_labels("azure") == {}
    # The gate needs IP targets (pod_readiness_gate.md): with instance targets it never applies.
    assert AWS_LB_ANNOTATIONS[f"{AWS}nlb-target-type"] == "ip"


@pytest.mark.parametrize("case", sorted(CHART_CASES))
def test_a_target_drains_no_longer_than_the_server_and_is_gone_before_the_pod(
    case: str,
) -> None:
    """The server closes its listener at once and every client within lame_duck_duration:
    draining the target longer gains nothing, and it must end before the termination grace,
    when the kubelet kills the server."""
    grace, duration, termination = _chart_shutdown(case)
    assert grace < duration  # nats-server refuses otherwise (server.go:1138)
    delay = int(_attributes()["deregistration_delay.timeout_seconds"])
    assert delay in DEREGISTRATION_RANGE
    assert delay == endpoint.DEREGISTRATION_DELAY_SECONDS
    assert duration <= delay < termination, (grace, duration, delay, termination)


def test_the_program_renders_the_chart_shutdown_it_reasons_about() -> None:
    """The program's own values leave the chart's lame duck settings alone (else the reasoning
    above would be about other numbers)."""
    conf = render_nats_conf(chart_values(CHART_CASES["east"]))
    assert (conf["lame_duck_grace_period"], conf["lame_duck_duration"]) == ("10s", "30s")


def test_health_checks_make_a_new_target_healthy_sooner_than_the_defaults() -> None:
    """The readiness gate holds each pod of a roll until its target passes `healthy` checks;
    fewer checks than the controller's default shorten every step, within what NLB accepts."""
    interval = int(AWS_LB_ANNOTATIONS[f"{AWS}healthcheck-interval"])
    timeout = int(AWS_LB_ANNOTATIONS[f"{AWS}healthcheck-timeout"])
    healthy = int(AWS_LB_ANNOTATIONS[f"{AWS}healthcheck-healthy-threshold"])
    unhealthy = int(AWS_LB_ANNOTATIONS[f"{AWS}healthcheck-unhealthy-threshold"])
    assert AWS_LB_ANNOTATIONS[f"{AWS}healthcheck-protocol"] == "tcp"
    assert AWS_LB_ANNOTATIONS[f"{AWS}healthcheck-port"] == "traffic-port"
    assert interval in INTERVAL_RANGE
    assert timeout <= interval
    assert healthy in THRESHOLD_RANGE
    assert unhealthy in THRESHOLD_RANGE
    default_wait = CONTROLLER_DEFAULTS["interval"] * CONTROLLER_DEFAULTS["healthy"]
    assert interval * healthy < default_wait  # 20 s of checks against 30 s, after registration
    assert interval * unhealthy < CONTROLLER_DEFAULTS["interval"] * CONTROLLER_DEFAULTS["unhealthy"]


def test_the_lb_service_carries_the_settings_on_aws_and_none_on_azure() -> None:
    aws = lb_annotations("aws")
    assert {k: aws[k] for k in AWS_LB_ANNOTATIONS} == AWS_LB_ANNOTATIONS
    azure = lb_annotations("azure", {"x": "y"})
    assert not [k for k in azure if k.startswith(AWS)]
    assert not [k for k in azure if k.startswith(AZURE_PROBE_ANNOTATION_PREFIX)]


def test_azure_probe_defaults_suffice(west: object) -> None:
    """Why the Azure Service sets no probe annotation: with externalTrafficPolicy Cluster (the
    program sets none, so the default) the Azure load balancer probes each node's NodePort over
    TCP, not the pods; which pod a connection reaches is kube-proxy's choice, and kube-proxy
    sends new connections only to Ready pods. A NATS pod that stops leaves the endpoints when
    it terminates, while its server still drains in lame duck, so no probe setting changes a pod
    rollout; the probe only takes a whole node out, which the defaults do in 5 s x 2 = 10 s, well
    inside the 30 s a stopping server keeps its clients."""
    _, duration, _ = _chart_shutdown("west")
    node_out = AZURE_PROBE_DEFAULT_INTERVAL_SECONDS * AZURE_PROBE_DEFAULT_NUM_OF_PROBE
    assert node_out < duration
    from offline.evaluate import Evaluation  # noqa: PLC0415
    from tests.conftest import named  # noqa: PLC0415

    assert isinstance(west, Evaluation)
    service = named(west, "kubernetes:core/v1:Service", "-endpoint-lb")
    assert service.inputs["spec"]["type"] == "LoadBalancer"
    assert "externalTrafficPolicy" not in service.inputs["spec"]  # Kubernetes' default: Cluster
    probes = [k for k in service.inputs["metadata"]["annotations"] if "health-probe" in k]
    assert probes == []


def test_the_namespace_label_comes_before_the_pods(east: object) -> None:
    """The webhook acts at pod creation: in the evaluated east stack the namespace carries the
    label, and the release (which makes the pods) depends on the namespace and on the Service
    (whose address in status means its TargetGroupBinding exists)."""
    from offline.evaluate import Evaluation  # noqa: PLC0415
    from tests.conftest import depends_on, named  # noqa: PLC0415

    assert isinstance(east, Evaluation)
    namespace = named(east, "kubernetes:core/v1:Namespace", "-nats-ns")
    assert namespace.inputs["metadata"]["labels"] == {READINESS_GATE_INJECT: "enabled"}
    release = named(east, "kubernetes:helm.sh/v3:Release", "-nats-release")
    service = named(east, "kubernetes:core/v1:Service", "-endpoint-lb")
    assert depends_on(east, release, namespace)
    assert depends_on(east, release, service)


def test_west_namespace_has_no_aws_label(west: object) -> None:
    from offline.evaluate import Evaluation  # noqa: PLC0415
    from tests.conftest import named  # noqa: PLC0415

    assert isinstance(west, Evaluation)
    namespace = named(west, "kubernetes:core/v1:Namespace", "-nats-ns")
    assert READINESS_GATE_INJECT not in (namespace.inputs["metadata"].get("labels") or {})


# How long a new NLB IP target is reported to stay `initial`, in seconds (sources above).
REPORTED_REGISTRATION = {"#1786 maintainer": (240, 300), "#1834 AWS support": (180, 300)}
CONTROLLER_REQUEUE_SECONDS = 15  # resource_manager.go:34
CONTROLLER_MAX_BACKOFF_SECONDS = 1000  # controller_config.go:39
# The fixed timeout the release had before it was derived (components/nats_region.py).
FORMER_RELEASE_TIMEOUT_SECONDS = 900


def _nats_container(case: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the StatefulSet's spec, its nats container) as the real chart rendered them."""
    spec = yaml.safe_load((GOLDEN / f"{case}.stateful-set.yaml").read_text())["spec"]
    (nats,) = [c for c in spec["template"]["spec"]["containers"] if c["name"] == "nats"]
    return spec, nats


@pytest.mark.parametrize("case", sorted(CHART_CASES))
def test_the_chart_pieces_of_a_step_are_the_rendered_chart(case: str) -> None:
    """One server at a time with no wait of its own (RollingUpdate, no minReadySeconds); the old
    pod is gone by the termination grace; a server that starts at once is Ready at the startup
    probe's first check and the readiness probe's next."""
    spec, nats = _nats_container(case)
    assert spec.get("updateStrategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
    assert "rollingUpdate" not in spec.get("updateStrategy", {})  # no partition, no maxUnavailable
    assert "minReadySeconds" not in spec
    grace, duration, termination = _chart_shutdown(case)
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == termination
    assert termination == rollout.CHART_TERMINATION_GRACE_SECONDS
    assert grace < duration < termination  # the server has drained before the stop ends
    assert nats["startupProbe"]["initialDelaySeconds"] == rollout.CHART_STARTUP_PROBE_DELAY_SECONDS
    assert nats["readinessProbe"]["periodSeconds"] == rollout.CHART_READINESS_PROBE_PERIOD_SECONDS


def test_a_step_counts_a_prompt_start_not_the_chart_startup_allowance() -> None:
    """The chart lets a server take 910 s to start (JetStream recovering a large store) before
    the kubelet restarts it; the step counts a server that starts at once, so a roll of servers
    that each recover for minutes can outlast the release timeout (docs/operations.md says so)."""
    _, nats = _nats_container("east")
    probe = nats["startupProbe"]
    allowance = probe["initialDelaySeconds"] + probe["failureThreshold"] * probe["periodSeconds"]
    assert allowance == 910
    assert roll_step("aws").start == 20
    assert release_timeout_seconds("aws", 3) < 3 * allowance


def test_a_step_on_aws_waits_for_registration_health_checks_and_the_gate() -> None:
    step = roll_step("aws")
    assert max(hi for _, hi in REPORTED_REGISTRATION.values()) == rollout.NLB_REGISTRATION_SECONDS
    assert rollout.CONTROLLER_REQUEUE_SECONDS == CONTROLLER_REQUEUE_SECONDS
    # The health checks as the program configures them on the Service.
    interval = int(AWS_LB_ANNOTATIONS[f"{AWS}healthcheck-interval"])
    healthy = int(AWS_LB_ANNOTATIONS[f"{AWS}healthcheck-healthy-threshold"])
    assert step == RollStep(
        stop=60, start=20, registration=300, health_checks=interval * healthy, gate=15
    )
    assert step.seconds == 415
    # "about 20 s" per step was the health checks alone: a twentieth of the worst step.
    assert step.health_checks == 20
    assert step.seconds > 20 * step.health_checks
    # A controller in failure backoff waits longer than any step: not budgeted, documented.
    assert step.seconds < CONTROLLER_MAX_BACKOFF_SECONDS


def test_on_azure_a_step_is_the_chart_stop_and_start() -> None:
    assert roll_step("azure") == RollStep(
        stop=60, start=20, registration=0, health_checks=0, gate=0
    )


def test_the_former_timeout_did_not_cover_a_three_server_roll_on_aws() -> None:
    assert 3 * roll_step("aws").seconds == 1245 > FORMER_RELEASE_TIMEOUT_SECONDS


@pytest.mark.parametrize("cloud", ["aws", "azure"])
@pytest.mark.parametrize("replicas", range(1, 6))  # nats.replicas allows 1-5
def test_the_release_timeout_covers_a_roll_and_one_step_more(cloud: Cloud, replicas: int) -> None:
    step = roll_step(cloud)
    timeout = release_timeout_seconds(cloud, replicas)
    assert timeout >= (replicas + 1) * step.seconds
    assert timeout >= FORMER_RELEASE_TIMEOUT_SECONDS  # the first install's needs did not shrink
    assert timeout < (replicas + 1) * step.seconds + FORMER_RELEASE_TIMEOUT_SECONDS


def test_release_timeouts_by_cloud_and_servers() -> None:
    assert [release_timeout_seconds("aws", n) for n in range(1, 6)] == [900, 1245, 1660, 2075, 2490]
    assert {release_timeout_seconds("azure", n) for n in range(1, 6)} == {900}
    with pytest.raises(ValueError, match="at least 1"):
        release_timeout_seconds("aws", 0)


def test_the_longest_roll_fits_in_the_deploy_job() -> None:
    """The stack job's timeout (.github/workflows/stack.yml) must outlast the longest release
    wait the config allows, or CI would kill a roll Helm still waits for."""
    workflow = yaml.safe_load((GOLDEN.parent.parent / ".github/workflows/stack.yml").read_text())
    job_seconds = int(workflow["jobs"]["pulumi"]["timeout-minutes"]) * 60
    assert release_timeout_seconds("aws", 5) < job_seconds / 2
