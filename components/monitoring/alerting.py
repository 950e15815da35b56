"""``Alerting``: Alertmanager and the blackbox exporter, in the monitoring namespace, as the
scrape contract of ``components.monitoring.prometheus`` names them.

Creates:

- the ``alertmanager-config`` Secret holding ``alertmanager.yml``
  (``alertmanager.alertmanager_secret_text``: it carries the SMTP password and the webhook and
  dead man's switch URLs, so it is a Secret, a secret Output end to end, never a ConfigMap);
- the ``alertmanager`` Deployment (one replica, gossip off with an empty
  ``--cluster.listen-address``, its silences and notification log on a size-capped emptyDir),
  restricted and read-only, with the configuration's checksum on its pod template, and the
  ``alertmanager`` Service (port ``http``, 9093);
- the ``blackbox-exporter-config`` ConfigMap (``blackbox.yml``, no secrets), the
  ``blackbox-exporter`` Deployment (checksum likewise) and Service (port ``http``, 9115);
- their NetworkPolicies: Prometheus (``Peer.monitoring``) is the only client of both;
  Alertmanager may open the SMTP relay's port and HTTPS (chat webhook, dead man's switch) to
  public addresses, nothing else; the blackbox exporter may open HTTPS (the public site, whose
  load balancer's addresses are not fixed) and the in-cluster health endpoints it probes.

Why one replica: two Alertmanagers must gossip (port 9094) to share silences and deduplicate
notifications; one, without gossip, has nothing to share. Losing the pod loses its silences
(the emptyDir) and pauses notifications until it is back; the dead man's switch notices a
longer gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.app.edge.config import PORT as EDGE_PORT
from components.app.pod_spec import HTTP_PORT
from components.app.scope import EDGE, SERVER
from components.lib.component import Component
from components.lib.kube.network_policies import Allowance, Peer, Port, allow
from components.lib.kube.pods import checksum, container_security_context, writable
from components.lib.naming import Naming
from components.monitoring import deployment as monitoring
from components.monitoring.alertmanager import alertmanager_secret_text
from components.monitoring.deployment import Resources, Workload
from components.monitoring.prometheus import (
    ALERTMANAGER_PORT_NAME,
    ALERTMANAGER_SERVICE,
    APP_NAMESPACE,
    BLACKBOX_PORT,
    BLACKBOX_SERVICE,
)
from components.monitoring.render import BLACKBOX_FILE
from components.settings import AlertingSettings

ALERTMANAGER_IMAGE = "quay.io/prometheus/alertmanager:v0.28.1"
BLACKBOX_IMAGE = "quay.io/prometheus/blackbox-exporter:v0.27.0"
"""Upstream images pinned by release tag (allowlisted in ``policies/config/<stack>.json``)."""
NOBODY = 65534
"""The user both upstream images run as."""
ALERTMANAGER_PORT = 9093
ALERTMANAGER_CONFIG_DIR = "/etc/alertmanager"
ALERTMANAGER_DATA_DIR = "/alertmanager"
ALERTMANAGER_CONFIG_KEY = "alertmanager.yml"
BLACKBOX_CONFIG_DIR = "/etc/blackbox_exporter"
BLACKBOX_CONFIG_KEY = "blackbox.yml"
HTTPS = 443

core = k8s.core.v1


def smtp_port(smarthost: str) -> int:
    """The port of ``host:port`` (the settings checked its form)."""
    return int(smarthost.rpartition(":")[2])


@dataclass(frozen=True)
class AlertingArgs:
    settings: AlertingSettings
    """Receivers, the SMTP relay and the secret URLs and password."""
    namespace: pulumi.Input[str]
    """The monitoring namespace (``Monitoring.namespace``)."""
    naming: Naming
    """Names and labels of the stack."""
    kubernetes: k8s.Provider
    """The cluster's provider."""


class Alerting(Component):
    """Alertmanager and the blackbox exporter (``depends_on``: the monitoring namespace)."""

    TYPE = "exposcholar:monitoring:Alerting"

    alertmanager_url: pulumi.Output[str]
    """Alertmanager's in-cluster URL (Prometheus's alerting target)."""
    blackbox_url: pulumi.Output[str]
    """The blackbox exporter's in-cluster URL."""
    alertmanager_checksum: pulumi.Output[str]
    """SHA-256 of ``alertmanager.yml`` (on the pod template: a change, a rotated secret
    included, rolls the pod; Alertmanager does not reread its file by itself)."""

    def __init__(
        self, name: str, args: AlertingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        k8s_opts = self.child_opts(provider=args.kubernetes)
        namespace, naming = args.namespace, args.naming

        # ── Alertmanager ──────────────────────────────────────────────────────────────────
        text = alertmanager_secret_text(args.settings)
        secret = core.Secret(
            f"{name}-alertmanager-config",
            metadata=monitoring.metadata(
                naming, "alertmanager-config", namespace, ALERTMANAGER_SERVICE
            ),
            type="Opaque",
            string_data={ALERTMANAGER_CONFIG_KEY: text},
            opts=k8s_opts,
        )
        # the SHA-256 is not secret (a secret annotation would make the whole Deployment a
        # secret in state, hidden from review and diffs); the document it digests carries the
        # high-entropy webhook URLs, so the digest cannot be inverted or guessed offline. As
        # Helm charts' ``checksum/secret`` annotations do, it rolls the pod on a rotation.
        self.alertmanager_checksum = pulumi.Output.unsecret(text.apply(checksum))
        alertmanager = _alertmanager(secret.metadata.name)
        monitoring.deployment(
            f"{name}-alertmanager",
            alertmanager,
            namespace=namespace,
            naming=naming,
            config_checksum=self.alertmanager_checksum,
            opts=k8s_opts,
        )
        am_service = monitoring.service(
            f"{name}-alertmanager-service",
            alertmanager,
            namespace=namespace,
            naming=naming,
            opts=k8s_opts,
        )
        allow(
            f"{name}-alertmanager-netpol",
            Allowance(
                ALERTMANAGER_SERVICE,
                naming.k8s_selector(ALERTMANAGER_SERVICE),
                ingress=(Peer.monitoring(ALERTMANAGER_PORT),),
                egress=(
                    # the SMTP relay and the webhooks are on the internet at no fixed address
                    Peer(
                        (Port(smtp_port(args.settings.smtp.smarthost)), Port(HTTPS)),
                        cidrs=("0.0.0.0/0",),
                    ),
                ),
            ),
            namespace=namespace,
            naming=naming,
            opts=k8s_opts,
        )

        # ── blackbox exporter ─────────────────────────────────────────────────────────────
        modules = BLACKBOX_FILE.read_text()
        config = core.ConfigMap(
            f"{name}-blackbox-config",
            metadata=monitoring.metadata(
                naming, f"{BLACKBOX_SERVICE}-config", namespace, BLACKBOX_SERVICE
            ),
            data={BLACKBOX_CONFIG_KEY: modules},
            opts=k8s_opts,
        )
        blackbox = _blackbox(config.metadata.name)
        monitoring.deployment(
            f"{name}-blackbox",
            blackbox,
            namespace=namespace,
            naming=naming,
            config_checksum=checksum(modules),
            opts=k8s_opts,
        )
        bb_service = monitoring.service(
            f"{name}-blackbox-service", blackbox, namespace=namespace, naming=naming, opts=k8s_opts
        )
        allow(
            f"{name}-blackbox-netpol",
            Allowance(
                BLACKBOX_SERVICE,
                naming.k8s_selector(BLACKBOX_SERVICE),
                ingress=(Peer.monitoring(BLACKBOX_PORT),),
                egress=(
                    Peer.https_anywhere(),  # the public site through its load balancer
                    # prometheus.internal_probe_targets: the edge's and the server's health
                    Peer(
                        (Port(EDGE_PORT),), pods=naming.k8s_selector(EDGE), namespace=APP_NAMESPACE
                    ),
                    Peer(
                        (Port(HTTP_PORT),),
                        pods=naming.k8s_selector(SERVER),
                        namespace=APP_NAMESPACE,
                    ),
                ),
            ),
            namespace=namespace,
            naming=naming,
            opts=k8s_opts,
        )

        self.alertmanager_url = pulumi.Output.concat(
            "http://", am_service.metadata.name, ".", am_service.metadata.namespace,
            f".svc:{ALERTMANAGER_PORT}",
        )  # fmt: skip
        self.blackbox_url = pulumi.Output.concat(
            "http://", bb_service.metadata.name, ".", bb_service.metadata.namespace,
            f".svc:{BLACKBOX_PORT}",
        )  # fmt: skip
        self.register()


def _alertmanager(secret_name: pulumi.Input[str]) -> Workload:
    """Alertmanager reading the Secret's file, no gossip, data on an emptyDir."""
    data_volume, data_mount = writable("data", ALERTMANAGER_DATA_DIR, size="256Mi")
    port = ALERTMANAGER_PORT_NAME
    return Workload(
        name=ALERTMANAGER_SERVICE,
        uid=NOBODY,
        port_name=port,
        port=ALERTMANAGER_PORT,
        container=core.ContainerArgs(
            name="alertmanager",
            image=ALERTMANAGER_IMAGE,
            image_pull_policy="Always",
            args=[
                f"--config.file={ALERTMANAGER_CONFIG_DIR}/{ALERTMANAGER_CONFIG_KEY}",
                f"--storage.path={ALERTMANAGER_DATA_DIR}",
                f"--web.listen-address=:{ALERTMANAGER_PORT}",
                "--cluster.listen-address=",  # one replica: no gossip port at all
                "--data.retention=120h",
            ],
            ports=[
                core.ContainerPortArgs(name=port, container_port=ALERTMANAGER_PORT, protocol="TCP")
            ],
            resources=Resources("10m", "64Mi", "200m", "128Mi").args(),
            # ready once the configuration is loaded; alive while the web server answers
            readiness_probe=monitoring.http_probe("/-/ready", port, period=5),
            liveness_probe=monitoring.http_probe("/-/healthy", port),
            security_context=container_security_context(),
            volume_mounts=[
                *monitoring.mounts({"config": ALERTMANAGER_CONFIG_DIR}),
                data_mount,
            ],
        ),
        volumes=[monitoring.config_volume("config", secret=secret_name), data_volume],
    )


def _blackbox(config_map: pulumi.Input[str]) -> Workload:
    """The blackbox exporter with the ConfigMap's modules (HTTP and TCP probes only: no raw
    sockets, so no ``NET_RAW``)."""
    port = "http"
    return Workload(
        name=BLACKBOX_SERVICE,
        uid=NOBODY,
        port_name=port,
        port=BLACKBOX_PORT,
        container=core.ContainerArgs(
            name="blackbox-exporter",
            image=BLACKBOX_IMAGE,
            image_pull_policy="Always",
            args=[
                f"--config.file={BLACKBOX_CONFIG_DIR}/{BLACKBOX_CONFIG_KEY}",
                f"--web.listen-address=:{BLACKBOX_PORT}",
            ],
            ports=[core.ContainerPortArgs(name=port, container_port=BLACKBOX_PORT, protocol="TCP")],
            resources=Resources("10m", "32Mi", "200m", "64Mi").args(),
            readiness_probe=monitoring.http_probe("/-/healthy", port, period=5),
            liveness_probe=core.ProbeArgs(
                tcp_socket=core.TCPSocketActionArgs(port=port),
                period_seconds=10,
                failure_threshold=3,
                timeout_seconds=3,
            ),
            security_context=container_security_context(),
            volume_mounts=monitoring.mounts({"config": BLACKBOX_CONFIG_DIR}),
        ),
        volumes=[monitoring.config_volume("config", config_map=config_map)],
    )
