"""Pulumi mocks that answer the way AWS, Azure and Kubernetes would, so outputs flow onward
(the EKS OIDC issuer into IRSA trust policies, the AKS credentials into a kubeconfig). The
monitor that records what the program registered is offline/monitor.py."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi.runtime import Mocks
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs

from infra.endpoint import AZURE_PIP_NAME, AZURE_PIP_RESOURCE_GROUP, NETWORK_CONTRIBUTOR_ROLE
from offline import tls_mocks

ACCOUNT_ID = "123456789012"
SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"


def _token(*parts: str, length: int = 12) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _unwrap(value: Any) -> Any:
    """Mocks see secret inputs wrapped; clouds see the plain value."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return _unwrap(value.get("value"))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """A registered input as the provider receives it, secrets unwrapped."""
    return _unwrap(value)


def _fake_pem_b64(name: str) -> str:
    body = base64.b64encode(f"mock certificate authority for {name}".encode()).decode()
    pem = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
    return base64.b64encode(pem.encode()).decode()


@dataclass(frozen=True)
class MockAccount:
    """The cloud account the mocks stand for: who is calling, and how this account names its
    availability zones (each AWS account maps zone names to zone IDs its own way)."""

    caller_arn: str = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/nats-supercluster-ci/GitHubActions"
    # IAM roles that exist, by name, with their paths.
    roles: Mapping[str, str] = field(
        default_factory=lambda: {"nats-supercluster-ci": "/ci/", "platform-admins": "/"}
    )
    zone_ids: Mapping[str, str] = field(
        default_factory=lambda: {
            "us-east-1a": "use1-az4",
            "us-east-1b": "use1-az6",
            "us-east-1c": "use1-az1",
            "us-east-1d": "use1-az2",
            "us-east-1e": "use1-az3",
            "us-east-1f": "use1-az5",
        }
    )

    def role_arn(self, name: str) -> str:
        """What IAM GetRole answers; a role that does not exist is an error, as in IAM."""
        if name not in self.roles:
            raise ValueError(f"NoSuchEntity: The role with name {name} cannot be found.")
        return f"arn:aws:iam::{ACCOUNT_ID}:role{self.roles[name]}{name}"


class CloudMocks(Mocks):
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
        inputs = _unwrap(dict(args.inputs))
        if not args.custom and args.typ not in _STATE:  # a component; reads are not "custom"
            return None, {}
        handler = _STATE.get(args.typ)
        state = handler(self, args.name, inputs) if handler else {}
        if args.typ in _EC2_ID_PREFIXES:
            prefix = _EC2_ID_PREFIXES[args.typ]
            state["__id"] = f"{prefix}-{_token(prefix, args.name, length=17)}"
        resource_id = (
            state.pop("__id", None) or f"{args.name}-{_token(args.typ, args.name, length=8)}"
        )
        return resource_id, {**inputs, **state}

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        """Invokes (data sources), answered as the provider or the engine answers them."""
        answer = _INVOKES.get(args.token)
        return (answer(self, args.args), []) if answer else ({}, [])

    def _aks_user_credentials(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args.get("resourceName"))
        server = f"https://{name}-{_token(name, length=8)}.hcp.{self.region}.azmk8s.io:443"
        kubeconfig = json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": name,
                "clusters": [
                    {
                        "name": name,
                        "cluster": {
                            "server": server,
                            "certificate-authority-data": _fake_pem_b64(name),
                        },
                    }
                ],
                "users": [
                    {
                        "name": f"clusterUser_{name}",
                        "user": {"token": f"mock-token-{_token('token', name, length=32)}"},
                    }
                ],
                "contexts": [
                    {"name": name, "context": {"cluster": name, "user": f"clusterUser_{name}"}}
                ],
            }
        )
        encoded = base64.b64encode(kubeconfig.encode()).decode()
        return {"kubeconfigs": [{"name": "clusterUser", "value": encoded}]}

    def _caller_identity(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {
            "accountId": ACCOUNT_ID,
            "arn": self.account.caller_arn,
            "userId": f"AROA{_token('user', length=16).upper()}:session",
            "id": ACCOUNT_ID,
        }

    def _session_context_of(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._session_context(str(args.get("arn")))

    def _availability_zones(self, args: dict[str, Any]) -> dict[str, Any]:
        zones = sorted(
            (n, i) for n, i in self.account.zone_ids.items() if n.startswith(self.region)
        )
        return {
            "names": [n for n, _ in zones],
            "zoneIds": [i for _, i in zones],
            "groupNames": [self.region] * len(zones),
            "id": self.region,
            "state": args.get("state"),
        }

    def _azure_client_config(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {
            "subscriptionId": SUBSCRIPTION_ID,
            "tenantId": _token("tenant", length=32),
            "clientId": _token("client", length=32),
            "objectId": _token("object", length=32),
        }

    def _read_stack_outputs(self, args: dict[str, Any]) -> dict[str, Any]:
        """The engine's function behind StackReference: the same answer, or "unknown stack"."""
        state = self._stack_reference(str(args.get("name")), args)
        state.pop("__id")
        return state

    # --- AWS ---------------------------------------------------------------------------------
    def _session_context(self, arn: str) -> dict[str, Any]:
        """IAM's answer: for an STS assumed-role session, the role it came from (GetRole, so
        with the role's path); any other ARN passes through."""
        parts = arn.split(":", 5)
        if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
            _, role, session = parts[5].split("/", 2)
            return {
                "arn": arn,
                "issuerArn": self.account.role_arn(role),
                "issuerName": role,
                "sessionName": session,
            }
        return {"arn": arn, "issuerArn": arn, "issuerName": "", "sessionName": ""}

    def _access_entry(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        cluster, principal = str(inputs.get("clusterName")), str(inputs.get("principalArn"))
        entries = self.access_entries.setdefault(cluster, set())
        if principal in entries:
            raise ValueError(  # EKS's answer (HTTP 409)
                "ResourceInUseException: The specified access entry resource is already in use "
                "on this cluster."
            )
        entries.add(principal)
        return {"accessEntryArn": self._arn("eks", f"access-entry/{cluster}/{_token(principal)}")}

    def _arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        region = self.region if regional else ""
        return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"

    def _eks_cluster(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        cluster = inputs.get("name") or name
        oidc_id = _token("oidc", cluster, length=32).upper()
        if (inputs.get("accessConfig") or {}).get("bootstrapClusterCreatorAdminPermissions"):
            # EKS makes the creator's access entry itself.
            creator = self._session_context(self.account.caller_arn)["issuerArn"]
            self.access_entries.setdefault(cluster, set()).add(creator)
        return {
            "__id": cluster,
            "name": cluster,
            "arn": self._arn("eks", f"cluster/{cluster}"),
            "endpoint": f"https://{oidc_id}.gr7.{self.region}.eks.amazonaws.com",
            "certificateAuthority": {"data": _fake_pem_b64(cluster)},
            "identities": [
                {
                    "oidcs": [
                        {"issuer": f"https://oidc.eks.{self.region}.amazonaws.com/id/{oidc_id}"}
                    ]
                }
            ],
            "status": "ACTIVE",
        }

    def _iam_role(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        role = inputs.get("name") or f"{name}-{_token('role', name, length=7)}"
        return {"__id": role, "name": role, "arn": self._arn("iam", f"role/{role}", regional=False)}

    def _iam_policy(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        policy = inputs.get("name") or f"{name}-{_token('policy', name, length=7)}"
        arn = self._arn("iam", f"policy/{policy}", regional=False)
        return {"__id": arn, "name": policy, "arn": arn}

    def _oidc_provider(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        host = str(inputs.get("url", "")).removeprefix("https://")
        arn = self._arn("iam", f"oidc-provider/{host}", regional=False)
        return {"__id": arn, "arn": arn}

    def _kms_key(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        key_id = _token("kms", name, length=36)
        return {"__id": key_id, "keyId": key_id, "arn": self._arn("kms", f"key/{key_id}")}

    def _node_group(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        group = f"{name}-{_token('ng', name, length=8)}"
        return {
            "nodeGroupName": group,
            "status": "ACTIVE",
            "arn": self._arn("eks", f"nodegroup/{inputs.get('clusterName')}/{group}"),
        }

    # --- Azure -------------------------------------------------------------------------------
    def _resource_group(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        group = inputs.get("resourceGroupName") or f"{name}{_token('rg', name, length=8)}"
        return {"__id": f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{group}", "name": group}

    def _managed_cluster(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        cluster = inputs.get("resourceName") or name
        group = inputs.get("resourceGroupName")
        self.cluster_principals.add(_token("p", cluster, length=32))
        return {
            "__id": f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{group}/providers/"
            f"Microsoft.ContainerService/managedClusters/{cluster}",
            "name": cluster,
            "fqdn": f"{inputs.get('dnsPrefix')}-{_token(cluster, length=8)}.hcp."
            f"{self.region}.azmk8s.io",
            "identity": {
                "type": "SystemAssigned",
                "principalId": _token("p", cluster, length=32),
                "tenantId": _token("t", cluster, length=32),
            },
            "oidcIssuerProfile": {
                "enabled": True,
                "issuerURL": f"https://{self.region}.oic.prod-aks.azure.com/"
                f"{_token('oic', cluster, length=32)}/",
            },
            "provisioningState": "Succeeded",
        }

    def _public_ip(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        ip_name = inputs.get("publicIpAddressName") or f"{name}{_token('pip', name, length=8)}"
        group = str(inputs.get("resourceGroupName"))
        token = _token("pip", group, ip_name)
        address = f"20.{int(token[:2], 16)}.{int(token[2:4], 16)}.{int(token[4:6], 16)}"
        resource_id = (
            f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{group}/providers/"
            f"Microsoft.Network/publicIPAddresses/{ip_name}"
        )
        state = {"__id": resource_id, "name": ip_name, "ipAddress": address}
        self.public_ips[(group, ip_name)] = {**inputs, "id": resource_id, "ipAddress": address}
        return state

    def _role_assignment(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        self.role_assignments.append(dict(inputs))
        return {
            "__id": f"{inputs.get('scope')}/providers/Microsoft.Authorization/"
            f"roleAssignments/{_token('ra', name, length=32)}"
        }

    def _may_use_ip(self, group: str, ip: dict[str, Any]) -> bool:
        """The cloud provider acts as the cluster's identity: it needs a role covering the IP."""
        group_id = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{group}"
        return any(
            str(a.get("roleDefinitionId", "")).endswith("/" + NETWORK_CONTRIBUTOR_ROLE)
            and a.get("principalId") in self.cluster_principals
            and a.get("scope") in (group_id, ip["id"])
            for a in self.role_assignments
        )

    # --- Pulumi ------------------------------------------------------------------------------
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

    # --- Kubernetes --------------------------------------------------------------------------
    def _service(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        spec = inputs.get("spec") or {}
        if spec.get("type") != "LoadBalancer":
            return {}
        service = (inputs.get("metadata") or {}).get("name", name)
        token = _token("lb", service, self.region, length=32)
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
        release = inputs.get("name") or f"{name}-{_token('rel', name, length=8)}"
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


# EC2 answers with an id of a fixed shape per kind; nothing else of its state is read onward.
_EC2_ID_PREFIXES = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/routeTable:RouteTable": "rtb",
}

_STATE: dict[str, Any] = {
    "aws:eks/cluster:Cluster": CloudMocks._eks_cluster,
    "aws:eks/nodeGroup:NodeGroup": CloudMocks._node_group,
    "aws:eks/accessEntry:AccessEntry": CloudMocks._access_entry,
    "aws:iam/role:Role": CloudMocks._iam_role,
    "aws:iam/policy:Policy": CloudMocks._iam_policy,
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": CloudMocks._oidc_provider,
    "aws:kms/key:Key": CloudMocks._kms_key,
    "azure-native:resources:ResourceGroup": CloudMocks._resource_group,
    "azure-native:containerservice:ManagedCluster": CloudMocks._managed_cluster,
    "azure-native:network:PublicIPAddress": CloudMocks._public_ip,
    "azure-native:authorization:RoleAssignment": CloudMocks._role_assignment,
    "kubernetes:helm.sh/v3:Release": CloudMocks._helm_release,
    "kubernetes:core/v1:Service": CloudMocks._service,
    "pulumi:pulumi:StackReference": CloudMocks._stack_reference,
    "random:index/randomPassword:RandomPassword": lambda _m, n, i: {
        "result": _token("password", n, length=int(i.get("length", 16)))
    },
    "tls:index/privateKey:PrivateKey": lambda _m, _n, i: tls_mocks.private_key(i),
    "tls:index/selfSignedCert:SelfSignedCert": lambda _m, _n, i: tls_mocks.self_signed_cert(i),
    "tls:index/certRequest:CertRequest": lambda _m, _n, i: tls_mocks.cert_request(i),
    "tls:index/locallySignedCert:LocallySignedCert": lambda _m, _n, i: (
        tls_mocks.locally_signed_cert(i)
    ),
}


_INVOKES: dict[str, Callable[[CloudMocks, dict[str, Any]], dict[str, Any]]] = {
    "azure-native:containerservice:listManagedClusterUserCredentials": (
        CloudMocks._aks_user_credentials
    ),
    "aws:index/getCallerIdentity:getCallerIdentity": CloudMocks._caller_identity,
    "aws:iam/getSessionContext:getSessionContext": CloudMocks._session_context_of,
    "aws:index/getAvailabilityZones:getAvailabilityZones": CloudMocks._availability_zones,
    "azure-native:authorization:getClientConfig": CloudMocks._azure_client_config,
    "pulumi:pulumi:readStackOutputs": CloudMocks._read_stack_outputs,
}
# Outputs a stack marks secret; a StackReference hands them on as secrets.
_SECRET_STACK_OUTPUTS = {"kubeconfig", "caKeys", "natsContext"}
