"""Region specs whose chart rendering is pinned in tests/golden/ (see tools/chart_golden.py)."""

from __future__ import annotations

from infra.monitoring import Scraping
from infra.nats_values import Gateway, RegionNames, RegionSpec

EAST_URL = "tls://a1b2c3.elb.us-east-1.amazonaws.com:7222"
WEST_URL = "tls://20.12.34.56:7222"

CHART_CASES: dict[str, RegionSpec] = {
    "east": RegionSpec(
        names=RegionNames(cluster="east", namespace="nats"),
        replicas=3,
        endpoint="a1b2c3.elb.us-east-1.amazonaws.com",
        peers=(),
        server_name_prefix="aws-us-east-1-",
        jetstream=True,
        storage_class="gp3",
        storage_size="10Gi",
    ),
    "west": RegionSpec(
        names=RegionNames(cluster="west", namespace="nats"),
        replicas=3,
        endpoint="20.12.34.56",
        peers=(Gateway("east", EAST_URL),),
        server_name_prefix="azure-westus-",
        jetstream=True,
        storage_class="jetstream",
        storage_size="20Gi",
        # Scraped by kube-prometheus-stack's operator (east by pod annotations).
        scraping=Scraping(operator=True, release="kube-prometheus-stack"),
    ),
    "central-no-jetstream": RegionSpec(
        names=RegionNames(cluster="central", namespace="nats"),
        replicas=1,
        endpoint="central.example.net",
        peers=(Gateway("east", EAST_URL), Gateway("west", WEST_URL)),
        server_name_prefix="aws-us-east-2-",
        jetstream=False,
        storage_class="gp3",
        storage_size="10Gi",
    ),
}
