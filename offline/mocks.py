"""Pulumi mocks that answer the way AWS, Azure and Kubernetes would, so outputs flow onward
(the EKS OIDC issuer into IRSA trust policies, the AKS credentials into a kubeconfig): the clouds
put together, with Kubernetes' and the Pulumi engine's own answers. AWS is offline/mocks_aws.py,
Azure offline/mocks_azure.py, what both are made of offline/mocks_common.py; the monitor that
records what the program registered is offline/monitor.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pulumi.runtime import Mocks
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs

from infra.endpoint import AZURE_PIP_NAME, AZURE_PIP_RESOURCE_GROUP
from offline import tls_mocks
from offline.mocks_aws import AWS_INVOKES, AWS_STATE, EC2_ID_PREFIXES, AwsMocks, MockAccount
from offline.mocks_azure import AZURE_INVOKES, AZURE_STATE, AzureMocks
from offline.mocks_common import digest, unwrap


class CloudMocks(AwsMocks, AzureMocks, Mocks):
    """Per resource type, the state the cloud returns after create: ids, ARNs, endpoints.

    `stack_outputs` holds the outputs of other stacks by their fully qualified name, as a
    StackReference reads them (for example east's outputs when west is evaluated)."""

    def __init__(
        self,
        region: str,
        stack_outputs: Mapping[str, Mapping[str, Any]] | None = None,
        account: MockAccount | None = None,
    ) -> None:
        self.region = region
        self.account = account or MockAccount()
        # EKS access entries by cluster: one per principal, as EKS enforces.
        self.access_entries: dict[str, set[str]] = {}
        self.cloud = "aws" if "-" in region else "azure"
        self.stack_outputs = dict(stack_outputs or {})
        # What Azure holds once created, for the answers that depend on it: public IPs by
        # (resource group, name), role assignments, the clusters' identities.
        self.public_ips: dict[tuple[str, str], dict[str, Any]] = {}
        self.role_assignments: list[dict[str, Any]] = []
        self.cluster_principals: set[str] = set()

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = unwrap(dict(args.inputs))
        if not args.custom and args.typ not in _STATE:  # a component; reads are not "custom"
            return None, {}
        handler = _STATE.get(args.typ)
        state = handler(self, args.name, inputs) if handler else {}
        if args.typ in EC2_ID_PREFIXES:
            prefix = EC2_ID_PREFIXES[args.typ]
            state["__id"] = f"{prefix}-{digest(prefix, args.name, length=17)}"
        resource_id = (
            state.pop("__id", None) or f"{args.name}-{digest(args.typ, args.name, length=8)}"
        )
        return resource_id, {**inputs, **state}

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        """Invokes (data sources), answered as the provider or the engine answers them."""
        answer = _INVOKES.get(args.token)
        return (answer(self, args.args), []) if answer else ({}, [])

    def _read_stack_outputs(self, args: dict[str, Any]) -> dict[str, Any]:
        """The engine's function behind StackReference: the same answer, or "unknown stack"."""
        state = self._stack_reference(str(args.get("name")), args)
        state.pop("__id")
        return state

    def _stack_reference(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        stack = str(inputs.get("name"))
        if stack not in self.stack_outputs:
            raise ValueError(f"unknown stack {stack!r}")  # what the backend answers
        outputs = dict(self.stack_outputs[stack])
        return {
            "__id": stack,
            "name": stack,
            "outputs": outputs,
            "secretOutputNames": [k for k in outputs if k in _SECRET_STACK_OUTPUTS],
        }

    def _service(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        spec = inputs.get("spec") or {}
        if spec.get("type") != "LoadBalancer":
            return {}
        service = (inputs.get("metadata") or {}).get("name", name)
        token = digest("lb", service, self.region, length=32)
        if self.cloud == "aws":
            address = {
                "hostname": f"k8s-nats-{service[:9]}-{token[:10]}-{token[10:26]}"
                f".elb.{self.region}.amazonaws.com"
            }
        else:
            annotations = (inputs.get("metadata") or {}).get("annotations") or {}
            pip = annotations.get(AZURE_PIP_NAME)
            if pip is None:
                address = {
                    "ip": f"20.{int(token[:2], 16)}.{int(token[2:4], 16)}.{int(token[4:6], 16)}"
                }
            else:
                # The cloud provider takes the named IP, if it exists and the cluster may use
                # it; otherwise the Service stays pending, with no address.
                group = str(annotations.get(AZURE_PIP_RESOURCE_GROUP))
                ip = self.public_ips.get((group, pip))
                if ip is None or not self._may_use_ip(group, ip):
                    return {"status": {"loadBalancer": {}}}
                address = {"ip": ip["ipAddress"]}
        return {"status": {"loadBalancer": {"ingress": [address]}}}

    def _helm_release(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        release = inputs.get("name") or f"{name}-{digest('rel', name, length=8)}"
        return {
            "name": release,
            "status": {
                "name": release,
                "namespace": inputs.get("namespace", "default"),
                "chart": inputs.get("chart"),
                "version": inputs.get("version"),
                "status": "deployed",
                "revision": 1,
            },
        }


_STATE: dict[str, Any] = {
    **AWS_STATE,
    **AZURE_STATE,
    "kubernetes:helm.sh/v3:Release": CloudMocks._helm_release,
    "kubernetes:core/v1:Service": CloudMocks._service,
    "pulumi:pulumi:StackReference": CloudMocks._stack_reference,
    "random:index/randomPassword:RandomPassword": lambda _m, n, i: {
        "result": digest("password", n, length=int(i.get("length", 16)))
    },
    "tls:index/privateKey:PrivateKey": lambda _m, _n, i: tls_mocks.private_key(i),
    "tls:index/selfSignedCert:SelfSignedCert": lambda _m, _n, i: tls_mocks.self_signed_cert(i),
    "tls:index/certRequest:CertRequest": lambda _m, _n, i: tls_mocks.cert_request(i),
    "tls:index/locallySignedCert:LocallySignedCert": lambda _m, _n, i: (
        tls_mocks.locally_signed_cert(i)
    ),
}


_INVOKES: dict[str, Callable[[CloudMocks, dict[str, Any]], dict[str, Any]]] = {
    **AWS_INVOKES,
    **AZURE_INVOKES,
    "pulumi:pulumi:readStackOutputs": CloudMocks._read_stack_outputs,
}
# Outputs a stack marks secret; a StackReference hands them on as secrets.
_SECRET_STACK_OUTPUTS = {"kubeconfig", "caKeys", "natsContext"}
