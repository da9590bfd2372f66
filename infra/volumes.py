"""Waiting, on destroy, until the storage driver has deleted every volume of the region's
StorageClass, so the driver (the EBS CSI add-on) and the class are not removed while disks it
made still exist (they would be left behind, billed, with nothing to delete them).

A PersistentVolume of a Delete-policy class keeps the CSI external-provisioner's finalizer until
the driver has deleted its disk (tests/test_volume_facts.py has the source), so "no
PersistentVolume of the class left" means "no disk left". The decisions are here; the Kubernetes
API calls are infra/kube_client.py's, the Pulumi resource components/volumes.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Long enough for the driver to detach and delete a few disks (each a few seconds to a minute
# on EBS), short enough that a stuck destroy says so within minutes.
DEFAULT_TIMEOUT_SECONDS = 600
POLL_SECONDS = 2
# The API server unanswered for this long: the cluster is gone already (deleted out of band),
# and no wait can bring its disks back under the driver's care. With a listing's own 10 s
# timeout and the poll, giving up takes under 30 s.
UNREACHABLE_SECONDS = 15
PROVISIONER_FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"


@dataclass(frozen=True)
class Volume:
    """A PersistentVolume still there: its name, phase, claim and whether deletion started."""

    name: str
    phase: str
    claim: str
    deleting: bool
    reclaim_policy: str

    def describe(self) -> str:
        state = "being deleted" if self.deleting else self.phase or "unknown phase"
        claim = f", claim {self.claim}" if self.claim else ""
        return f"{self.name} ({state}{claim}, reclaimPolicy {self.reclaim_policy})"


def remaining_volumes(listing: Mapping[str, Any], storage_class: str) -> list[Volume]:
    """The volumes of `storage_class` in a PersistentVolumeList, sorted by name."""
    found = []
    for item in listing.get("items") or []:
        spec = item.get("spec") or {}
        if spec.get("storageClassName") != storage_class:
            continue
        meta = item.get("metadata") or {}
        ref = spec.get("claimRef") or {}
        claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
        found.append(
            Volume(
                name=str(meta.get("name", "")),
                phase=str((item.get("status") or {}).get("phase", "")),
                claim=claim,
                deleting=bool(meta.get("deletionTimestamp")),
                reclaim_policy=str(spec.get("persistentVolumeReclaimPolicy", "")),
            )
        )
    return sorted(found, key=lambda v: v.name)


class VolumesLeftError(RuntimeError):
    """Volumes of the class were still there when the wait ran out."""


def volumes_left_message(storage_class: str, left: Sequence[Volume], waited: float) -> str:
    """What is left and what to do about it, for the destroy that stops here."""
    listed = "; ".join(v.describe() for v in left)
    return (
        f"{len(left)} PersistentVolume(s) of StorageClass {storage_class!r} still exist after "
        f"{waited:.0f} s, so the storage driver and the class are kept: {listed}. "
        "A volume whose claim still exists is in use: delete the claim (kubectl delete pvc -n "
        "<namespace> <claim>). A Released volume with reclaimPolicy Delete is the driver's to "
        "delete: read its csi-provisioner log (kubectl -n kube-system logs "
        "deploy/ebs-csi-controller -c csi-provisioner). A volume with reclaimPolicy Retain is "
        "never deleted by the driver: delete its disk in the cloud, then the PersistentVolume. "
        "Then run `pulumi destroy` again."
    )


@dataclass(frozen=True)
class WaitResult:
    """How the wait ended: every volume gone (`unreachable` False), or the API server never
    answered (True), in `waited` seconds after `polls` listings."""

    unreachable: bool
    waited: float
    polls: int


class UnreachableError(Exception):
    """The API server could not be reached (no answer, no route, no name)."""


def wait_until_released(
    list_volumes: Callable[[], Mapping[str, Any]],
    storage_class: str,
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    poll_seconds: float = POLL_SECONDS,
    unreachable_seconds: float = UNREACHABLE_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitResult:
    """Lists the volumes until none of `storage_class` is left. Raises VolumesLeftError at the
    timeout; gives up (`unreachable`) when the API server has not answered once for
    `unreachable_seconds`. Any other error from `list_volumes` (refused credentials) stops the
    wait as it is."""
    start = clock()
    answered = False
    polls = 0
    left: list[Volume] = []
    while True:
        polls += 1
        try:
            left = remaining_volumes(list_volumes(), storage_class)
            answered = True
        except UnreachableError:
            if not answered and clock() - start >= unreachable_seconds:
                return WaitResult(unreachable=True, waited=clock() - start, polls=polls)
        else:
            if not left:
                return WaitResult(unreachable=False, waited=clock() - start, polls=polls)
        waited = clock() - start
        if waited >= timeout_seconds:
            if not answered:
                return WaitResult(unreachable=True, waited=waited, polls=polls)
            raise VolumesLeftError(volumes_left_message(storage_class, left, waited))
        sleep(min(poll_seconds, max(timeout_seconds - waited, 0.0)))
