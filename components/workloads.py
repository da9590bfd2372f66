"""The application on one region: calculators, the requester Job, and where the recorder's
consumer is declared, the recorder and its MySQL with a generated password."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi_kubernetes import Provider as KubernetesProvider
from pulumi_kubernetes.apps.v1 import Deployment, StatefulSet
from pulumi_kubernetes.batch.v1 import Job
from pulumi_kubernetes.core.v1 import Secret, Service
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from infra.config import StackConfig
from infra.identities import MATH_OPERATIONS
from infra.monitoring import Scraping, scraped
from infra.nats_values import RegionNames
from infra.workloads import (
    PASSWORD_KEY,
    ROOT_PASSWORD_KEY,
    AppNames,
    calculator_deployment,
    database_service,
    database_statefulset,
    recorder_deployment,
    records_here,
    requester_job,
)


@dataclass(frozen=True)
class ApplicationArgs:
    config: StackConfig
    image: str
    kubernetes: KubernetesProvider
    # The identities' Secrets (RegionPki): each workload waits for its own.
    client_secrets: Mapping[str, Secret]
    storage_class: pulumi.Output[str]
    # The NATS release and the JetStream objects: the application starts after them and is
    # deleted before them.
    after: Sequence[pulumi.Resource]


class Application(pulumi.ComponentResource):
    calculators: dict[str, Deployment]
    requester: Job
    recorder: Deployment | None

    def __init__(
        self, name: str, args: ApplicationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("nats-supercluster:app:Application", name, None, opts)
        cfg = args.config
        app = AppNames(RegionNames(cfg.cluster_name, cfg.nats.namespace))
        region = cfg.cluster_name
        scraping = Scraping.of(cfg.monitoring)

        def on_cluster(*needs: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(
                parent=self, provider=args.kubernetes, depends_on=[*args.after, *needs]
            )

        self.calculators = {}
        for operation in MATH_OPERATIONS:
            manifest = scraped(
                calculator_deployment(
                    app, operation, args.image, cfg.app.calculator_replicas, region
                ),
                scraping,
            )
            self.calculators[operation] = Deployment(
                f"{name}-calculator-{operation}",
                metadata=manifest["metadata"],
                spec=manifest["spec"],
                opts=self._on_cluster(args, args.client_secrets["calculator"]),
            )

        self.recorder = None
        if records_here(cfg.jetstream):
            self.recorder = self._recorder(name, app, args, region, scraping)

        job = scraped(
            requester_job(app, args.image, cfg.app.requests, cfg.app.concurrency, region),
            scraping,
        )
        self.requester = Job(
            f"{name}-requester",
            metadata=job["metadata"],
            spec=job["spec"],
            opts=self._on_cluster(
                args, args.client_secrets["requester"], *self.calculators.values()
            ),
        )
        self.register_outputs({})

    def _on_cluster(self, args: ApplicationArgs, *needs: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=self, provider=args.kubernetes, depends_on=[*args.after, *needs]
        )

    def _recorder(
        self, name: str, app: AppNames, args: ApplicationArgs, region: str, scraping: Scraping
    ) -> Deployment:
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        passwords = {
            key: random.RandomPassword(f"{name}-db-{key}", length=32, special=False, opts=child)
            for key in (PASSWORD_KEY, ROOT_PASSWORD_KEY)
        }
        secret = Secret(
            f"{name}-db",
            metadata=ObjectMetaArgs(name=app.database_secret, namespace=app.namespace),
            string_data={key: password.result for key, password in passwords.items()},
            opts=self._on_cluster(args),
        )
        service_manifest = database_service(app, region)
        service = Service(
            f"{name}-db",
            metadata=service_manifest["metadata"],
            spec=service_manifest["spec"],
            opts=self._on_cluster(args),
        )
        database = database_statefulset(
            app, cfg.app.mysql_image, args.storage_class, cfg.app.mysql_storage_size, region
        )
        statefulset = StatefulSet(
            f"{name}-db",
            metadata=database["metadata"],
            spec=database["spec"],
            opts=self._on_cluster(args, secret, service),
        )
        manifest = scraped(recorder_deployment(app, args.image, region), scraping)
        return Deployment(
            f"{name}-recorder",
            metadata=manifest["metadata"],
            spec=manifest["spec"],
            opts=self._on_cluster(args, args.client_secrets["recorder"], statefulset, secret),
        )
