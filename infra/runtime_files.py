"""Where a region's runtime configuration lives beside the chart's `/etc/nats-config`: the
directory (a ConfigMap in the clouds) and the files nats.conf includes from it. Standard
library only: the control service in the services image reads these too."""

from __future__ import annotations

RUNTIME_DIR = "nats-runtime"
ROUTES_FILE = "routes.conf"  # included in the `cluster` block
ROUTES_INCLUDE = f"../{RUNTIME_DIR}/{ROUTES_FILE}"
GATEWAYS_FILE = "gateways.conf"  # included in the `gateway` block's `tls`
GATEWAYS_INCLUDE = f"../{RUNTIME_DIR}/{GATEWAYS_FILE}"
