"""Names and tags, derived from the project and stack so two stacks never collide."""

from __future__ import annotations

from infra.config import StackConfig


def base_name(cfg: StackConfig) -> str:
    """The prefix of every logical and cloud name in a stack, e.g. 'nats-supercluster-east'."""
    return f"{cfg.project}-{cfg.stack}".lower()


def kubernetes_cluster_name(cfg: StackConfig) -> str:
    """The cloud name of the Kubernetes cluster; fixed up front because AWS subnet tags carry it."""
    return f"{cfg.project}-{cfg.cluster_name}"


def common_tags(cfg: StackConfig) -> dict[str, str]:
    """Tags on every cloud resource: who owns it and which stack made it, plus the user's own."""
    tags: dict[str, str] = {
        "project": cfg.project,
        "stack": cfg.stack,
        "nats-cluster": cfg.cluster_name,
        "managed-by": "pulumi",
    }
    tags.update(cfg.tags)
    return tags
