"""How a changed file becomes a server reload in the clouds: the upstream facts the control
service's cloud path and its local stand-in (localnet/reloader.py) rest on, each with its
source, and the project's values checked against them.

Sources (paraphrased, not copied):
- NATS chart, nats-io/k8s helm/charts/nats at chart version 2.14.2 (tag nats-2.14.2, commit
  957650f): values.yaml:371-375 runs the reloader sidecar, image
  natsio/nats-server-config-reloader:0.23.0; files/stateful-set/reloader-container.yaml gives
  it `-pid /var/run/nats/nats.pid -config /etc/nats-config/nats.conf` and then
  templates/_helpers.tpl:256-273 (nats.reloaderConfig) one `-config` per `cert_file`,
  `key_file` and `ca_file` value and per `$include` (joined to the config directory) of the
  configuration; no other flag, so the reloader runs on its defaults.
- The reloader, nats-io/nack pkg/natsreloader/natsreloader.go and
  cmd/nats-server-config-reloader/main.go. The stored snapshot's newest release is v0.22.4; its
  main at f6dad09 (2026-04-29) has both files unchanged since v0.22.4, and the chart's bump to
  0.23.0 followed on 2026-05-12 (nats-io/k8s#1160); tag v0.23.0 itself is not stored here.
  - init (286-364): for each `-config` ending in `.conf`, the files it includes, recursively,
    relative to the including file (getIncludePaths 612-662, regex at 626), and the
    `cert_file`/`key_file`/`ca_file` paths found in them (getCertPaths 664-698, regex at 666,
    which matches only unquoted keys: the chart's JSON rendering is covered by its `-config`
    list); found once, at start; each file watched on its own (kubernetes#112677) and its
    SHA-256 kept (getFileDigest 167-178, preloaded 346-355).
  - On an event (handleEvent 180-216), a file whose digest equals the one kept is ignored:
    the same content written again signals nothing; a changed one replaces the digest and is
    signalled. Events already queued are handled together (handleEvents 219-229), with no
    debounce timer; a file removed (the kubelet's symlink swap) is added again on a 1 s ticker
    (418-441) and compared then.
  - reload (366-392): finds the server's pid again (waitForProcess 103-148) and sends the
    signal, SIGHUP by default (main.go:67); on an error it retries after RetryWaitSecs (4,
    main.go:66) +/-10% (retryJitter 488-493), up to MaxRetries (30, main.go:65), then Run
    returns the error (464-467) and the process exits 1 (main.go:118-121): its restart
    preloads the digests of the files as they are then, so a change never signalled stays
    unsignalled. It never learns whether the server's reload worked.
  - Polling (runPollingMode 529-593) only with `-force-poll` or when inotify is exhausted.
- nats-server v2.14.2: server/signal.go:71-75, SIGHUP reloads and a failed reload is only
  logged ("Failed to reload server configuration"); server/reload.go:1481 sets the config
  load time only after a reload that worked, server/server.go:765 at start, and
  server/monitor.go:1810 reports it as /varz `config_load_time`; no metric counts failures.
- Kubernetes (1.35, the default `kubernetesVersion`): pkg/kubelet/apis/config/v1beta1/
  defaults.go, syncFrequency 1 min and configMapAndSecretChangeDetectionStrategy Watch;
  pkg/kubelet/pod_workers.go, each pod resynced after wait.Jitter(resyncInterval, 0.5), so
  between 60 and 90 s; the kubelet projects a changed ConfigMap or Secret into a pod at that
  sync (kubernetes.io, "Mounted ConfigMaps are updated automatically": up to the sync period
  plus the cache's propagation delay, a watch's here).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infra import reload_check
from infra.control_plane import control_deployment
from infra.nats_conf import render_nats_conf, to_nats_conf_text
from infra.nats_values import chart_values
from infra.runtime_files import GATEWAYS_FILE, ROUTES_FILE
from localnet import reloader
from tests.chart_cases import CHART_CASES

GOLDEN = Path(__file__).parent / "golden"
RELOADER_IMAGE = "natsio/nats-server-config-reloader:0.23.0"
NATS_CONF = "/etc/nats-config/nats.conf"


def _golden_watches(case: str) -> set[str]:
    facts = json.loads((GOLDEN / f"{case}.pod.json").read_text())
    return {str(f) for f in facts["reloader_watches"]}


def _rendered(case: str) -> dict[str, str]:
    """The files the chart writes for `case`, where the servers' pods have them."""
    text = to_nats_conf_text(render_nats_conf(chart_values(CHART_CASES[case])))
    return {
        NATS_CONF: text,
        f"/etc/nats-runtime/{ROUTES_FILE}": "",
        f"/etc/nats-runtime/{GATEWAYS_FILE}": "",
    }


def test_the_chart_runs_the_reloader_these_facts_are_about() -> None:
    for case in CHART_CASES:
        stateful_set = yaml.safe_load((GOLDEN / f"{case}.stateful-set.yaml").read_text())
        containers = stateful_set["spec"]["template"]["spec"]["containers"]
        (sidecar,) = [c for c in containers if c["name"] == "reloader"]
        assert sidecar["image"] == RELOADER_IMAGE
        flags = [a for a in sidecar["args"] if a.startswith("-")]
        assert set(flags) == {"-pid", "-config"}  # on its defaults otherwise


@pytest.mark.parametrize("case", sorted(CHART_CASES))
def test_the_files_found_are_the_ones_the_chart_has_the_reloader_watch(case: str) -> None:
    """infra.reload_check.watched_files, over the nats.conf the chart renders, finds exactly
    what the real chart passes the reloader (keys included); the control service's share is
    the same less the keys."""
    files = _rendered(case)
    watched = reload_check.watched_files(NATS_CONF, files.__getitem__, keys=True)
    assert set(watched) == _golden_watches(case)
    public = reload_check.watched_files(NATS_CONF, files.__getitem__, keys=False)
    assert set(public) == {f for f in watched if not f.endswith(".key")}


@pytest.mark.parametrize("case", sorted(CHART_CASES))
def test_the_control_service_mounts_every_file_it_compares_and_no_key(case: str) -> None:
    spec = CHART_CASES[case]
    servers = [f"{spec.names.cluster}-{i}" for i in range(3)]
    deployment = control_deployment(spec.names, "img", spec.names.cluster, {}, servers)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WATCH_CONFIG"] == NATS_CONF
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounted: set[str] = set()
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "secret" in volume and volume["secret"]["secretName"] != "nats-client-control":
            assert mount["readOnly"] is True
            keys = [item["key"] for item in volume["secret"]["items"]]
            assert keys in (["tls.crt"], ["ca.crt"])  # never a private key
            mounted |= {f"{mount['mountPath']}/{k}" for k in keys}
        elif "configMap" in volume:
            assert mount["readOnly"] is True
            mounted |= {f"{mount['mountPath']}/{name}" for name in _config_map_keys(volume)}
    public = reload_check.watched_files(NATS_CONF, _rendered(case).__getitem__, keys=False)
    assert set(public) <= mounted
    # the same objects the chart mounts into the servers' pods
    stateful_set = yaml.safe_load((GOLDEN / f"{case}.stateful-set.yaml").read_text())
    theirs = {
        v.get("configMap", {}).get("name") or v.get("secret", {}).get("secretName")
        for v in stateful_set["spec"]["template"]["spec"]["volumes"]
    }
    ours = {
        v.get("configMap", {}).get("name") or v.get("secret", {}).get("secretName")
        for v in pod["volumes"]
        if v["name"].startswith("servers-")
    }
    assert ours <= theirs


def _config_map_keys(volume: dict[str, object]) -> list[str]:
    name = volume["configMap"]["name"]  # type: ignore[index]
    return ["nats.conf"] if name.endswith("-config") else [ROUTES_FILE, GATEWAYS_FILE]


def test_the_stand_in_and_the_service_use_the_facts() -> None:
    assert (reloader.RETRIES, reloader.RETRY_WAIT) == (30, 4.0)  # main.go:65-66
    assert reload_check.PROJECTION_SECONDS == 90  # 60 s sync, jittered by up to half
    # the service's copy may come up to 90 s after the servers', theirs up to 90 s after its
    assert reload_check.SPREAD_SECONDS == reload_check.PROJECTION_SECONDS
    assert reload_check.GRACE_SECONDS >= (
        reload_check.PROJECTION_SECONDS + reload_check.RELOADER_READD_SECONDS
    )
