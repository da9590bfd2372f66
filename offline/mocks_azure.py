"""The mocks' Azure: what ARM answers for resource groups, AKS clusters and their credentials,
public IPs and role assignments, and whether a cluster may use a public IP (offline/mocks.py
puts the clouds together)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from infra.endpoint import NETWORK_CONTRIBUTOR_ROLE
from offline.mocks_common import SUBSCRIPTION_ID, digest, fake_pem_b64


class AzureMocks:
    """What Azure returns after a create, and its invokes, for CloudMocks."""

    region: str
    # What Azure holds once created, for the answers that depend on it: public IPs by
    # (resource group, name), role assignments, the clusters' identities.
    public_ips: dict[tuple[str, str], dict[str, Any]]
    role_assignments: list[dict[str, Any]]
    cluster_principals: set[str]

    def _aks_user_credentials(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args.get("resourceName"))
        server = f"https://{name}-{digest(name, length=8)}.hcp.{self.region}.azmk8s.io:443"
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
                            "certificate-authority-data": fake_pem_b64(name),
                        },
                    }
                ],
                "users": [
                    {
                        "name": f"clusterUser_{name}",
                        "user": {"token": f"mock-token-{digest('token', name, length=32)}"},
                    }
                ],
                "contexts": [
                    {"name": name, "context": {"cluster": name, "user": f"clusterUser_{name}"}}
                ],
            }
        )
        encoded = base64.b64encode(kubeconfig.encode()).decode()
        return {"kubeconfigs": [{"name": "clusterUser", "value": encoded}]}

    def _azure_client_config(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {
            "subscriptionId": SUBSCRIPTION_ID,
            "tenantId": digest("tenant", length=32),
            "clientId": digest("client", length=32),
            "objectId": digest("object", length=32),
        }

    def _resource_group(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        group = inputs.get("resourceGroupName") or f"{name}{digest('rg', name, length=8)}"
        return {"__id": f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{group}", "name": group}

    def _managed_cluster(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        cluster = inputs.get("resourceName") or name
        group = inputs.get("resourceGroupName")
        self.cluster_principals.add(digest("p", cluster, length=32))
        return {
            "__id": f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{group}/providers/"
            f"Microsoft.ContainerService/managedClusters/{cluster}",
            "name": cluster,
            "fqdn": f"{inputs.get('dnsPrefix')}-{digest(cluster, length=8)}.hcp."
            f"{self.region}.azmk8s.io",
            "identity": {
                "type": "SystemAssigned",
                "principalId": digest("p", cluster, length=32),
                "tenantId": digest("t", cluster, length=32),
            },
            "oidcIssuerProfile": {
                "enabled": True,
                "issuerURL": f"https://{self.region}.oic.prod-aks.azure.com/"
                f"{digest('oic', cluster, length=32)}/",
            },
            "provisioningState": "Succeeded",
        }

    def _public_ip(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        ip_name = inputs.get("publicIpAddressName") or f"{name}{digest('pip', name, length=8)}"
        group = str(inputs.get("resourceGroupName"))
        token = digest("pip", group, ip_name)
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
            f"roleAssignments/{digest('ra', name, length=32)}"
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


AZURE_STATE: dict[str, Any] = {
    "azure-native:resources:ResourceGroup": AzureMocks._resource_group,
    "azure-native:containerservice:ManagedCluster": AzureMocks._managed_cluster,
    "azure-native:network:PublicIPAddress": AzureMocks._public_ip,
    "azure-native:authorization:RoleAssignment": AzureMocks._role_assignment,
}

AZURE_INVOKES: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    "azure-native:containerservice:listManagedClusterUserCredentials": (
        AzureMocks._aks_user_credentials
    ),
    "azure-native:authorization:getClientConfig": AzureMocks._azure_client_config,
}
