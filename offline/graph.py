"""The order the Pulumi engine would create and delete a stack's resources in: a resource comes
after everything it depends on (declared and property dependencies, its provider, its parent)
when created, and before all of them when deleted."""

from __future__ import annotations

from offline.evaluate import Evaluation
from offline.monitor import Registration


def dependencies(resource: Registration) -> set[str]:
    """The URNs `resource` needs to exist: what it must be created after and deleted before."""
    found = set(resource.dependencies)
    for urns in resource.property_dependencies.values():
        found.update(urns)
    if resource.provider:
        found.add(resource.provider.rsplit("::", 1)[0])
    if resource.parent:
        found.add(resource.parent)
    found.discard(resource.urn)
    return found


def create_order(evaluation: Evaluation) -> list[Registration]:
    """Each resource after all its dependencies; ties in registration order."""
    by_urn = {r.urn: r for r in evaluation.resources}
    needs = {r.urn: dependencies(r) & by_urn.keys() for r in evaluation.resources}
    done: list[Registration] = []
    placed: set[str] = set()
    while len(done) < len(by_urn):
        ready = [r for r in evaluation.resources if r.urn not in placed and needs[r.urn] <= placed]
        if not ready:
            stuck = sorted(u for u in by_urn if u not in placed)
            raise ValueError(f"dependency cycle among {stuck}")
        done.extend(ready)
        placed.update(r.urn for r in ready)
    return done


def delete_order(evaluation: Evaluation) -> list[Registration]:
    """Each resource before all its dependencies: the reverse of a creation order."""
    return list(reversed(create_order(evaluation)))
