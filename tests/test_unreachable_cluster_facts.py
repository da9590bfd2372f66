"""What pulumi-kubernetes does with a cluster it cannot use, as facts read from its source, and
the program's destroy order checked against them: a runner whose credentials the cluster
refuses can drop only objects that leave nothing billed behind.

Source, pulumi/pulumi-kubernetes provider/pkg/provider/provider.go at tag v4.32.0 (unchanged on
master at 94977969, 2026-07-01; the Go source of the pinned 4.34.2 was not available here):
- "Unreachable" is any failure while configuring the provider, not only a missing cluster: a
  kubeconfig that does not parse (lines 864-868) or load (947-958), and any error listing the
  API server's resources (994-999), an answer 401 Unauthorized or a failing credential plugin
  (`aws eks get-token` with no AWS identity) included.
- With `deleteUnreachable` (the variable `kubernetes:config:deleteUnreachable`, lines 619-633),
  Delete of an object drops it from the state without touching the cluster (2575-2583), and so
  does Read on refresh (1918-1926).
- Delete of a Helm Release (`kubernetes:helm.sh/v3:Release`) on an unreachable cluster fails,
  whatever `deleteUnreachable` says (2546-2552: "can't delete Helm Release with unreachable
  cluster"). Reported upstream as pulumi/pulumi-kubernetes#2675 (open); the fix proposed in
  pull request #4593 (open, 2026-09-09) would drop the Release instead.

Every provider of every stack sets `deleteUnreachable`, and the pin is the version these facts
were read for (tests/test_kubernetes_provider_facts.py, which checks each provider's options;
a new pin may carry pull request #4593: read the Release's rule again).

So a destroy run with credentials the cluster refuses drops every object deleted before the
first Release and then stops at the Release; everything the Release depends on stays in the
state. A destroy whose cluster is really gone stops at the Release too
(docs/destroying.md#destroying-regions says what to do).
"""

from __future__ import annotations

from collections.abc import Iterable

from offline.evaluate import Evaluation
from offline.graph import dependencies
from offline.monitor import Registration

RELEASE = "kubernetes:helm.sh/v3:Release"
SERVICE = "kubernetes:core/v1:Service"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
VOLUMES_RELEASED = "-volumes-released"


def _behind(evaluation: Evaluation, roots: Iterable[Registration]) -> set[str]:
    """Everything `roots` depend on, transitively: deleted only after them."""
    by_urn = {r.urn: r for r in evaluation.resources}
    seen: set[str] = set()
    todo = [r.urn for r in roots]
    while todo:
        for needed in dependencies(by_urn[todo.pop()]) & by_urn.keys():
            if needed not in seen:
                seen.add(needed)
                todo.append(needed)
    return seen


def _refused_destroy(evaluation: Evaluation) -> list[Registration]:
    """The Kubernetes objects a destroy with refused credentials drops from the state: all but
    the Releases and what they depend on (the engine deletes whatever no pending delete waits
    for, in parallel, before the Release fails)."""
    kept = _behind(evaluation, evaluation.of_type(RELEASE))
    return [
        r
        for r in evaluation.resources
        if r.type.startswith("kubernetes:") and r.custom and r.type != RELEASE
        and r.urn not in kept
    ]  # fmt: skip


def test_refused_credentials_cannot_drop_a_load_balancer_service(
    deployed: dict[str, Evaluation],
) -> None:
    """The cloud load balancer is deleted by the Service's deletion (the LB controller on AWS,
    the cloud provider on Azure); a Service dropped from the state would leave it, billed."""
    for stack, evaluation in deployed.items():
        dropped = {r.urn for r in _refused_destroy(evaluation)}
        balancers = [
            s for s in evaluation.of_type(SERVICE)
            if (s.inputs.get("spec") or {}).get("type") == "LoadBalancer"
        ]  # fmt: skip
        assert balancers, stack
        for service in balancers:
            assert service.urn not in dropped, (stack, service.name)


def test_a_volume_a_refused_destroy_drops_is_still_waited_for(
    deployed: dict[str, Evaluation],
) -> None:
    """A StatefulSet with volume claims that the refused destroy drops (the application's
    database) leaves its claim: on EKS the volume wait, which every workload depends on, stops
    the next destroy until the claim is gone (tests/test_volumes.py); on AKS the disks go with the
    node resource group (tests/test_volume_facts.py). The NATS servers' volumes are the
    Release's, which stops."""
    for stack, evaluation in deployed.items():
        dropped = [
            r for r in _refused_destroy(evaluation)
            if r.type == STATEFUL_SET and (r.inputs.get("spec") or {}).get("volumeClaimTemplates")
        ]  # fmt: skip
        waits = [r for r in evaluation.resources if r.name.endswith(VOLUMES_RELEASED)]
        if evaluation.output_values()["cloud"] == "aws":
            (wait,) = waits
            for statefulset in dropped:
                assert wait.urn in _behind(evaluation, [statefulset]), statefulset.name
        else:
            assert not waits, stack


def test_what_a_refused_destroy_drops_is_listed_in_the_runbook(
    deployed: dict[str, Evaluation],
) -> None:
    """Only objects that hold no cloud resource of their own (Deployments, the requester Job,
    Secrets, ConfigMaps, the control service's RBAC, the application database, whose claim is
    caught as above), all in the region's namespace, which the Release keeps in the state: the
    rerun that follows new credentials deletes the namespace and, with it, everything that was
    dropped."""
    allowed = {
        "kubernetes:apps/v1:Deployment",
        "kubernetes:batch/v1:Job",
        "kubernetes:core/v1:Secret",
        "kubernetes:core/v1:ConfigMap",
        "kubernetes:core/v1:ServiceAccount",
        "kubernetes:rbac.authorization.k8s.io/v1:Role",
        "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
        STATEFUL_SET,
        SERVICE,
    }
    for stack, evaluation in deployed.items():
        dropped = _refused_destroy(evaluation)
        assert dropped, stack
        assert {r.type for r in dropped} <= allowed, stack
        for service in (r for r in dropped if r.type == SERVICE):
            assert (service.inputs.get("spec") or {}).get("type", "ClusterIP") == "ClusterIP"
        kept = _behind(evaluation, evaluation.of_type(RELEASE))
        (namespace,) = [
            r for r in evaluation.of_type("kubernetes:core/v1:Namespace") if r.urn in kept
        ]
        name = namespace.inputs["metadata"]["name"]
        for resource in dropped:
            assert resource.inputs["metadata"]["namespace"] == name, (stack, resource.name)
