"""The mocks' AWS: the account they stand for, and what STS, IAM, EC2, EKS and KMS answer
(offline/mocks.py puts the clouds together)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from offline.mocks_common import ACCOUNT_ID, digest, fake_pem_b64


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


class AwsMocks:
    """What AWS returns after a create, and its invokes, for CloudMocks."""

    region: str
    account: MockAccount
    # EKS access entries by cluster: one per principal, as EKS enforces.
    access_entries: dict[str, set[str]]

    def _caller_identity(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {
            "accountId": ACCOUNT_ID,
            "arn": self.account.caller_arn,
            "userId": f"AROA{digest('user', length=16).upper()}:session",
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
        return {"accessEntryArn": self._arn("eks", f"access-entry/{cluster}/{digest(principal)}")}

    def _arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        region = self.region if regional else ""
        return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"

    def _eks_cluster(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        cluster = inputs.get("name") or name
        oidc_id = digest("oidc", cluster, length=32).upper()
        if (inputs.get("accessConfig") or {}).get("bootstrapClusterCreatorAdminPermissions"):
            # EKS makes the creator's access entry itself.
            creator = self._session_context(self.account.caller_arn)["issuerArn"]
            self.access_entries.setdefault(cluster, set()).add(creator)
        return {
            "__id": cluster,
            "name": cluster,
            "arn": self._arn("eks", f"cluster/{cluster}"),
            "endpoint": f"https://{oidc_id}.gr7.{self.region}.eks.amazonaws.com",
            "certificateAuthority": {"data": fake_pem_b64(cluster)},
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
        role = inputs.get("name") or f"{name}-{digest('role', name, length=7)}"
        return {"__id": role, "name": role, "arn": self._arn("iam", f"role/{role}", regional=False)}

    def _iam_policy(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        policy = inputs.get("name") or f"{name}-{digest('policy', name, length=7)}"
        arn = self._arn("iam", f"policy/{policy}", regional=False)
        return {"__id": arn, "name": policy, "arn": arn}

    def _oidc_provider(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        host = str(inputs.get("url", "")).removeprefix("https://")
        arn = self._arn("iam", f"oidc-provider/{host}", regional=False)
        return {"__id": arn, "arn": arn}

    def _kms_key(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        key_id = digest("kms", name, length=36)
        return {"__id": key_id, "keyId": key_id, "arn": self._arn("kms", f"key/{key_id}")}

    def _node_group(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        group = f"{name}-{digest('ng', name, length=8)}"
        return {
            "nodeGroupName": group,
            "status": "ACTIVE",
            "arn": self._arn("eks", f"nodegroup/{inputs.get('clusterName')}/{group}"),
        }


# EC2 answers with an id of a fixed shape per kind; nothing else of its state is read onward.
EC2_ID_PREFIXES = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/routeTable:RouteTable": "rtb",
}

AWS_STATE: dict[str, Any] = {
    "aws:eks/cluster:Cluster": AwsMocks._eks_cluster,
    "aws:eks/nodeGroup:NodeGroup": AwsMocks._node_group,
    "aws:eks/accessEntry:AccessEntry": AwsMocks._access_entry,
    "aws:iam/role:Role": AwsMocks._iam_role,
    "aws:iam/policy:Policy": AwsMocks._iam_policy,
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": AwsMocks._oidc_provider,
    "aws:kms/key:Key": AwsMocks._kms_key,
}

AWS_INVOKES: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    "aws:index/getCallerIdentity:getCallerIdentity": AwsMocks._caller_identity,
    "aws:iam/getSessionContext:getSessionContext": AwsMocks._session_context_of,
    "aws:index/getAvailabilityZones:getAvailabilityZones": AwsMocks._availability_zones,
}
