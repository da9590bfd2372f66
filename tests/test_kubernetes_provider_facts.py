"""How pulumi-kubernetes decides between updating and replacing a Secret or a ConfigMap, as facts
read from its source, and the program's Kubernetes providers checked against them under the
mocks: a certificate, key or password that changes is written into the existing Secret, never
deleted and re-created under the same name (a pod starting in that gap could not mount it).

Sources, pulumi/pulumi-kubernetes:
- provider/pkg/provider/diff.go, `forceNewProperties` (tag v4.32.0, commit a03ff6ba; unchanged
  on master at 94977969, 2026-07-01): besides `.metadata.name` and `.metadata.namespace`, a
  core/v1 Secret replaces on `.type`, `.stringData` and `.data` unless the provider has
  `enableSecretMutable` and the Secret is not `immutable: true`, then only on `.type`; a
  ConfigMap replaces on `.data` and `.binaryData` unless `enableConfigMapMutable` is set and it
  is not immutable.
- provider/pkg/provider/provider.go (same tag), `Diff`: a replacement is delete-before-replace
  when the object has a name the user chose (not autonamed) and keeps the same name and
  namespace; `Configure`: the options arrive as the variables
  `kubernetes:config:enableSecretMutable` / `enableConfigMapMutable` and count only when equal to
  the string "true"; `DiffConfig`: a change of provider inputs replaces the provider (and so
  every resource made with it) only for `renderYamlToDirectory`, a changed `clusterIdentifier`,
  a computed `kubeconfig`/`context`/`cluster`, or a change of the kubeconfig's active cluster;
  any other changed key, such as adding these two options, is an in-place update.
- The Python SDK at the version requirements.txt pins (pulumi-kubernetes 4.34.2, installed):
  `Provider` takes `enable_secret_mutable` and `enable_config_map_mutable` and sends each as
  JSON (`true`). The Go source of 4.34.2 itself was not available here; the rules above are
  those of v4.32.0 and of master as of 2026-07-01, between which diff.go did not change.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re

import pulumi_kubernetes

from offline.evaluate import Evaluation
from offline.monitor import Registration
from offline.stack_files import PROJECT_DIR

SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
PROVIDER = "pulumi:providers:kubernetes"
IDENTITY = {".metadata.name", ".metadata.namespace"}
# DiffConfig: the provider inputs whose change replaces the provider.
PROVIDER_REPLACING_KEYS = {"renderYamlToDirectory", "clusterIdentifier", "kubeconfig", "context",
                           "cluster"}  # fmt: skip


def replacing_fields(
    kind: str, *, secret_mutable: bool, config_map_mutable: bool, immutable: bool
) -> set[str]:
    """diff.go `forceNewProperties` for the two kinds, at v4.32.0."""
    fields = set(IDENTITY)
    if kind == "Secret":
        if not secret_mutable or immutable:
            return fields | {".type", ".stringData", ".data"}
        return fields | {".type"}
    if kind == "ConfigMap" and (not config_map_mutable or immutable):
        return fields | {".binaryData", ".data"}
    return fields


def delete_before_replace(replaces: set[str], metadata: dict[str, object]) -> bool:
    """provider.go `Diff`: a replacement of a user-named object keeping its name and namespace
    must delete the old object first (the new one cannot exist beside it)."""
    return bool(replaces) and bool(metadata.get("name"))


def provider_replaced(changed_keys: set[str]) -> bool:
    """provider.go `DiffConfig` for known (not computed) inputs on the same cluster."""
    return bool(changed_keys & PROVIDER_REPLACING_KEYS)


def _flag(provider: Registration, key: str) -> bool:
    # Configure compares the variable with the string "true"; the SDK sends JSON.
    return provider.inputs.get(key) == "true"


def _provider_of(evaluation: Evaluation, resource: Registration) -> Registration:
    urn = resource.provider.rsplit("::", 1)[0]
    (provider,) = [p for p in evaluation.of_type(PROVIDER) if p.urn == urn]
    return provider


def test_the_pinned_sdk_offers_both_options() -> None:
    pinned = re.search(
        r"^pulumi-kubernetes==([\d.]+)", (PROJECT_DIR / "requirements.txt").read_text(), re.M
    )
    assert pinned is not None
    # Also the pin tests/test_unreachable_cluster_facts.py was read for (pull request #4593,
    # open at it, would change what a Helm Release does on an unreachable cluster).
    assert importlib.metadata.version("pulumi_kubernetes") == pinned.group(1) == "4.34.2"
    parameters = inspect.signature(pulumi_kubernetes.Provider._internal_init).parameters
    assert {"enable_secret_mutable", "enable_config_map_mutable"} <= set(parameters)


def test_every_kubernetes_provider_mutates_secrets_and_config_maps_in_place(
    deployed: dict[str, Evaluation],
) -> None:
    for stack, evaluation in deployed.items():
        providers = evaluation.of_type(PROVIDER)
        assert providers, stack
        for provider in providers:
            assert _flag(provider, "enableSecretMutable"), (stack, provider.name)
            assert _flag(provider, "enableConfigMapMutable"), (stack, provider.name)
            # Same comparison in Configure (lines 619-633); what it does:
            # tests/test_unreachable_cluster_facts.py.
            assert _flag(provider, "deleteUnreachable"), (stack, provider.name)
        # No Kubernetes object falls back to a default provider built without the options.
        for resource in evaluation.resources:
            if resource.type.startswith("kubernetes:"):
                assert _provider_of(evaluation, resource) in providers, resource.name


def test_a_changed_secret_or_config_map_is_updated_not_deleted_first(
    deployed: dict[str, Evaluation],
) -> None:
    seen = 0
    for evaluation in deployed.values():
        for resource in evaluation.of_type(SECRET) + evaluation.of_type(CONFIG_MAP):
            kind = resource.type.rsplit(":", 1)[1]
            metadata = resource.inputs["metadata"]
            assert metadata.get("name"), resource.name  # fixed names: the case that matters
            assert not resource.inputs.get("immutable"), resource.name
            provider = _provider_of(evaluation, resource)
            changed = {".data", ".stringData"} if kind == "Secret" else {".data"}
            replaces = changed & replacing_fields(
                kind,
                secret_mutable=_flag(provider, "enableSecretMutable"),
                config_map_mutable=_flag(provider, "enableConfigMapMutable"),
                immutable=False,
            )
            assert not replaces, resource.name
            # Without the options the same change deletes the object before re-creating it.
            before = changed & replacing_fields(
                kind, secret_mutable=False, config_map_mutable=False, immutable=False
            )
            assert delete_before_replace(before, metadata), resource.name
            seen += 1
    # Every region's server, CA and client Secrets, the database Secret, the ConfigMaps.
    assert seen >= 3 * 8


def test_adding_the_options_updates_the_provider_without_replacing_its_resources() -> None:
    assert not provider_replaced({"enableSecretMutable", "enableConfigMapMutable"})
    assert provider_replaced({"renderYamlToDirectory"})  # the rule does replace on some keys
