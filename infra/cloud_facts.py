"""Facts about the clouds that the program's checks depend on, each with where it comes from.

These go stale: when a cloud announces a new Kubernetes version or a region gains zones, update
the table and its source line, and `./dev test` tells what else follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class SupportWindow:
    """When a cloud offers a Kubernetes minor version under standard support."""

    available: date
    standard_support_ends: date


# EKS: release and end of standard support. At the end, a cluster with upgradePolicy STANDARD is
# upgraded by EKS itself to the next version (docs: view-upgrade-policy), after which a program
# still asking for the old version would try a downgrade.
# Source: awsdocs/amazon-eks-user-guide latest/ug/versioning/kubernetes-versions.adoc @013856044
# (1.31-1.34); 1.35 "now available in Amazon EKS" (kubernetes-versions-standard.adoc @0e7fca37)
# with dates from endoflife.date; 1.36 from AWS's release announcement (2026-06-02), end of
# standard support 14 months later as for every version.
EKS_VERSIONS: dict[str, SupportWindow] = {
    "1.31": SupportWindow(date(2024, 9, 26), date(2025, 11, 26)),
    "1.32": SupportWindow(date(2025, 1, 23), date(2026, 3, 23)),
    "1.33": SupportWindow(date(2025, 5, 29), date(2026, 7, 29)),
    "1.34": SupportWindow(date(2025, 10, 2), date(2026, 12, 2)),
    "1.35": SupportWindow(date(2026, 1, 28), date(2027, 3, 27)),
    "1.36": SupportWindow(date(2026, 6, 2), date(2027, 8, 2)),
}

# AKS: general availability and end of life (community support), "the last day of the month"
# where the calendar names only a month.
# Source: MicrosoftDocs/azure-aks-docs articles/aks/supported-kubernetes-versions.md (2026-08-05),
# "AKS Kubernetes release calendar"; 1.35 GA 2026-03-05 and 1.36 GA 2026-06-19 per the Azure/AKS
# CHANGELOG.md.
AKS_VERSIONS: dict[str, SupportWindow] = {
    "1.31": SupportWindow(date(2024, 11, 1), date(2025, 11, 1)),
    "1.32": SupportWindow(date(2025, 4, 1), date(2026, 3, 31)),
    "1.33": SupportWindow(date(2025, 6, 1), date(2026, 7, 31)),
    "1.34": SupportWindow(date(2025, 11, 1), date(2026, 11, 30)),
    "1.35": SupportWindow(date(2026, 3, 5), date(2027, 3, 31)),
    "1.36": SupportWindow(date(2026, 6, 19), date(2027, 6, 30)),
}

# A version this close to its end is still accepted, with a warning to move on.
SUPPORT_WARNING_DAYS = 60

# Azure regions (programmatic names) with availability zones, and those without.
# Source: MicrosoftDocs/reliability-docs articles/reliability/regions-list.md, commit
# c7803c506e09 (2026-07-28), column "Availability zone support".
AZURE_ZONAL_REGIONS = frozenset(
    {
        "australiaeast", "austriaeast", "belgiumcentral", "brazilsouth", "canadacentral",
        "centralindia", "centralus", "chilecentral", "denmarkeast", "eastasia", "eastus",
        "eastus2", "francecentral", "germanywestcentral", "indiasouthcentral", "indonesiacentral",
        "israelcentral", "italynorth", "japaneast", "japanwest", "koreacentral", "malaysiawest",
        "mexicocentral", "newzealandnorth", "northeurope", "norwayeast", "polandcentral",
        "qatarcentral", "southafricanorth", "southcentralus", "southeastasia", "spaincentral",
        "swedencentral", "switzerlandnorth", "uaenorth", "uksouth", "westeurope", "westus2",
        "westus3",
    }
)  # fmt: skip
AZURE_ZONELESS_REGIONS = frozenset(
    {
        "australiacentral", "australiacentral2", "australiasoutheast", "brazilsoutheast",
        "canadaeast", "francesouth", "germanynorth", "koreasouth", "northcentralus",
        "norwaywest", "southafricawest", "southindia", "switzerlandwest", "uaecentral",
        "ukwest", "westcentralus", "westindia", "westus",
    }
)  # fmt: skip

# AWS regions (the partitions' regions EKS runs in). Source: pulumi-aws 7.51.1 (the pinned
# provider) pulumi_aws/_enums.py class Region; tests/test_config.py checks the table against
# the installed provider.
AWS_REGIONS = frozenset(
    {
        "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2",
        "ap-northeast-3", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2",
        "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
        "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1",
        "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1",
        "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-west-1",
        "us-west-2", "cn-north-1", "cn-northwest-1", "eusc-de-east-1", "us-gov-east-1",
        "us-gov-west-1", "us-iso-east-1", "us-iso-west-1", "us-isob-east-1", "us-isob-west-1",
        "eu-isoe-west-1", "us-isof-east-1", "us-isof-south-1",
    }
)  # fmt: skip

# Availability zone IDs where EKS cannot place a cluster's control-plane subnets. Zone names
# (us-east-1c) map to different IDs in each account, so the check needs the account's mapping.
# Source: awsdocs/amazon-eks-user-guide latest/ug/.../network-reqs.adoc @101184ec, "The subnets
# can't reside in the following Availability Zones"; the error is
# UnsupportedAvailabilityZoneException.
EKS_UNSUPPORTED_ZONE_IDS: dict[str, frozenset[str]] = {
    "us-east-1": frozenset({"use1-az3"}),
    "us-west-1": frozenset({"usw1-az2"}),
    "ca-central-1": frozenset({"cac1-az3"}),
}


def supported_versions(windows: dict[str, SupportWindow], today: date) -> list[str]:
    """The versions under standard support on `today`, oldest first."""
    return [v for v, w in sorted(windows.items()) if w.available <= today < w.standard_support_ends]
