"""``Grafana``: the dashboards of ``components/monitoring/dashboards/`` over Prometheus, in the
monitoring namespace, reachable only through ``kubectl port-forward`` (no Ingress, no public
Service).

Creates:

- the ``grafana-admin`` Secret: the admin password (setting ``grafanaAdminPassword``, a secret
  Output end to end), read by Grafana from a file (``GF_SECURITY_ADMIN_PASSWORD__FILE``), never
  an environment variable or a ConfigMap;
- the ``grafana-provisioning`` ConfigMap: the Prometheus datasource (uid ``prometheus``, the one
  every dashboard names; the Prometheus Service's URL) and the file provider of the dashboards;
- one ``grafana-dashboard-<name>`` ConfigMap per dashboard file, each well under the API
  server's 1 MiB object limit (checked here: a dashboard that outgrows it stops the preview),
  projected together into the folder the provider reads;
- the ``grafana`` Deployment: one replica, restricted, read-only root with emptyDirs for its
  database (sessions and the admin user, re-created at start: everything else is provisioned),
  plugins and temporary files; no outbound calls (usage reporting, update checks, news, plugin
  preinstall and Gravatar off), no sign-up, no anonymous access; the provisioning's checksum on
  its pod template; the ``grafana`` Service (port ``http``, 3000);
- its NetworkPolicy: no ingress but port-forwarding operators (which arrives through the
  kubelet, not as pod traffic); egress to Prometheus (9090) only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.lib.component import Component
from components.lib.kube.network_policies import PROMETHEUS, Allowance, Peer, Port, allow
from components.lib.kube.pods import NON_ROOT_UID, checksum, container_security_context, writable
from components.lib.naming import Naming
from components.monitoring import deployment as monitoring
from components.monitoring.deployment import Resources, Workload
from components.monitoring.prometheus import MONITORING_NAMESPACE
from components.monitoring.render import dashboards
from components.settings import Secret

GRAFANA = "grafana"
IMAGE = "docker.io/grafana/grafana:12.1.1"
"""Upstream image pinned by release tag (allowlisted in ``policies/config/<stack>.json``)."""
UID = NON_ROOT_UID
"""Not the image's 472: a high uid (no clash with a node's users); Grafana writes only its
emptyDirs (group-owned through ``fsGroup``) and reads its world-readable install."""
PORT = 3000
DATASOURCE_UID = "prometheus"
"""The datasource uid every dashboard names (``dashboards/README.md``)."""
PROMETHEUS_SERVICE = "prometheus"
PROMETHEUS_PORT = 9090
PROVISIONING_DIR = "/etc/grafana/provisioning"
DASHBOARDS_DIR = "/var/lib/grafana-dashboards"
SECRETS_DIR = "/etc/grafana/secrets"
DATA_DIR = "/var/lib/grafana"
PASSWORD_KEY = "admin-password"  # noqa: S105 - the Secret's key, not a password
CONFIG_MAP_LIMIT = 1024 * 1024
"""The API server refuses an object over 1 MiB (etcd's request limit)."""
CONFIG_MAP_MARGIN = 64 * 1024
"""Room left for the object's metadata and the JSON around the data."""
ENV = {
    "GF_PATHS_DATA": DATA_DIR,
    "GF_PATHS_PLUGINS": f"{DATA_DIR}/plugins",
    "GF_PATHS_LOGS": f"{DATA_DIR}/log",
    "GF_PATHS_PROVISIONING": PROVISIONING_DIR,
    "GF_SECURITY_ADMIN_USER": "admin",
    "GF_SECURITY_ADMIN_PASSWORD__FILE": f"{SECRETS_DIR}/{PASSWORD_KEY}",
    "GF_SECURITY_DISABLE_GRAVATAR": "true",
    "GF_USERS_ALLOW_SIGN_UP": "false",
    "GF_AUTH_ANONYMOUS_ENABLED": "false",
    "GF_ANALYTICS_REPORTING_ENABLED": "false",
    "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
    "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
    "GF_NEWS_NEWS_FEED_ENABLED": "false",
    "GF_PLUGINS_PREINSTALL_DISABLED": "true",
    "GF_LOG_MODE": "console",
}
"""Grafana's settings as environment variables (``GF_<SECTION>_<KEY>``): no secrets here."""

core = k8s.core.v1


def datasources(namespace: str = MONITORING_NAMESPACE) -> dict[str, Any]:
    """The provisioned Prometheus datasource (Grafana's ``datasources`` provisioning file)."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "type": "prometheus",
                "uid": DATASOURCE_UID,
                "access": "proxy",
                "url": f"http://{PROMETHEUS_SERVICE}.{namespace}.svc:{PROMETHEUS_PORT}",
                "isDefault": True,
                "editable": False,
                "jsonData": {"httpMethod": "POST", "timeInterval": "30s"},
            }
        ],
    }


def dashboard_provider() -> dict[str, Any]:
    """The file provider reading ``DASHBOARDS_DIR`` (Grafana's ``dashboards`` provisioning
    file): provisioned dashboards cannot be deleted or saved from the UI (the repository is
    their source)."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "exposcholar",
                "orgId": 1,
                "folder": "ExpoScholar",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": DASHBOARDS_DIR, "foldersFromFilesStructure": False},
            }
        ],
    }


def provisioning_files() -> dict[str, str]:
    """ConfigMap key -> text of the provisioning files."""
    return {
        "datasources.yaml": yaml.safe_dump(datasources(), sort_keys=False),
        "dashboards.yaml": yaml.safe_dump(dashboard_provider(), sort_keys=False),
    }


def dashboard_config_maps() -> dict[str, str]:
    """Dashboard name (its file's stem) -> its JSON, refusing one that a ConfigMap cannot
    hold and one that is not JSON."""
    found: dict[str, str] = {}
    for path, text in dashboards().items():
        name = path.rsplit("/", 1)[-1].removesuffix(".json")
        size = len(text.encode())
        if size > CONFIG_MAP_LIMIT - CONFIG_MAP_MARGIN:
            raise ValueError(
                f"dashboard {path} is {size} bytes: a ConfigMap holds at most "
                f"{CONFIG_MAP_LIMIT - CONFIG_MAP_MARGIN} of it; split the dashboard"
            )
        json.loads(text)  # a broken file fails here, naming nothing Grafana would skip silently
        found[name] = text
    if not found:
        raise ValueError("no dashboards in components/monitoring/dashboards/")
    return found


@dataclass(frozen=True)
class GrafanaArgs:
    admin_password: Secret
    """The admin user's password (setting ``grafanaAdminPassword``)."""
    namespace: pulumi.Input[str]
    """The monitoring namespace (``Monitoring.namespace``), where Prometheus's Service is."""
    naming: Naming
    """Names and labels of the stack."""
    kubernetes: k8s.Provider
    """The cluster's provider."""


class Grafana(Component):
    """Grafana with the repository's dashboards (``depends_on``: ``Monitoring``)."""

    TYPE = "exposcholar:monitoring:Grafana"

    url: pulumi.Output[str]
    """Grafana's in-cluster URL (``kubectl -n monitoring port-forward svc/grafana 3000``)."""
    config_checksum: pulumi.Output[str]
    """SHA-256 of the provisioning and the dashboards (on the pod template)."""

    def __init__(
        self, name: str, args: GrafanaArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        k8s_opts = self.child_opts(provider=args.kubernetes)
        namespace, naming = args.namespace, args.naming
        files = provisioning_files()
        boards = dashboard_config_maps()

        secret = core.Secret(
            f"{name}-admin",
            metadata=monitoring.metadata(naming, f"{GRAFANA}-admin", namespace, GRAFANA),
            type="Opaque",
            string_data={PASSWORD_KEY: args.admin_password.output()},
            opts=k8s_opts,
        )
        provisioning = core.ConfigMap(
            f"{name}-provisioning",
            metadata=monitoring.metadata(naming, f"{GRAFANA}-provisioning", namespace, GRAFANA),
            data=files,
            opts=k8s_opts,
        )
        board_maps = {
            board: core.ConfigMap(
                f"{name}-dashboard-{board}",
                metadata=monitoring.metadata(
                    naming, f"{GRAFANA}-dashboard-{board}", namespace, GRAFANA
                ),
                data={f"{board}.json": text},
                opts=k8s_opts,
            )
            for board, text in sorted(boards.items())
        }
        self.config_checksum = pulumi.Output.from_input(checksum(files, boards))
        workload = _grafana(secret, provisioning, board_maps)
        monitoring.deployment(
            f"{name}-deployment",
            workload,
            namespace=namespace,
            naming=naming,
            config_checksum=self.config_checksum,
            opts=k8s_opts,
        )
        service = monitoring.service(
            f"{name}-service", workload, namespace=namespace, naming=naming, opts=k8s_opts
        )
        allow(
            f"{name}-netpol",
            Allowance(
                GRAFANA,
                naming.k8s_selector(GRAFANA),
                egress=(
                    Peer((Port(PROMETHEUS_PORT),), pods=PROMETHEUS, namespace=MONITORING_NAMESPACE),
                ),
            ),
            namespace=namespace,
            naming=naming,
            opts=k8s_opts,
        )
        self.url = pulumi.Output.concat(
            "http://", service.metadata.name, ".", service.metadata.namespace, f".svc:{PORT}"
        )
        self.register()


def _grafana(
    secret: core.Secret, provisioning: core.ConfigMap, boards: dict[str, core.ConfigMap]
) -> Workload:
    data_volume, data_mount = writable("data", DATA_DIR, size="512Mi")
    tmp_volume, tmp_mount = writable("tmp", "/tmp")  # noqa: S108 - an emptyDir, not shared
    provisioning_items = [
        core.KeyToPathArgs(key="datasources.yaml", path="datasources/datasources.yaml"),
        core.KeyToPathArgs(key="dashboards.yaml", path="dashboards/dashboards.yaml"),
    ]
    return Workload(
        name=GRAFANA,
        uid=UID,
        port_name="http",
        port=PORT,
        container=core.ContainerArgs(
            name=GRAFANA,
            image=IMAGE,
            image_pull_policy="Always",
            env=[core.EnvVarArgs(name=key, value=value) for key, value in ENV.items()],
            ports=[core.ContainerPortArgs(name="http", container_port=PORT, protocol="TCP")],
            resources=Resources("50m", "128Mi", "500m", "512Mi").args(),
            startup_probe=core.ProbeArgs(
                http_get=core.HTTPGetActionArgs(path="/api/health", port="http"),
                period_seconds=5,
                failure_threshold=30,
                timeout_seconds=3,
            ),
            # ready when its database answers; alive while it accepts connections
            readiness_probe=monitoring.http_probe("/api/health", "http", period=10),
            liveness_probe=core.ProbeArgs(
                tcp_socket=core.TCPSocketActionArgs(port="http"),
                period_seconds=10,
                failure_threshold=6,
                timeout_seconds=3,
            ),
            security_context=container_security_context(),
            volume_mounts=[
                *monitoring.mounts(
                    {
                        "provisioning": PROVISIONING_DIR,
                        "dashboards": DASHBOARDS_DIR,
                        "admin": SECRETS_DIR,
                    }
                ),
                data_mount,
                tmp_mount,
            ],
        ),
        volumes=[
            core.VolumeArgs(
                name="provisioning",
                config_map=core.ConfigMapVolumeSourceArgs(
                    name=provisioning.metadata.name, items=provisioning_items, default_mode=0o444
                ),
            ),
            core.VolumeArgs(
                name="dashboards",
                projected=core.ProjectedVolumeSourceArgs(
                    default_mode=0o444,
                    sources=[
                        core.VolumeProjectionArgs(
                            config_map=core.ConfigMapProjectionArgs(name=board.metadata.name)
                        )
                        for board in boards.values()
                    ],
                ),
            ),
            monitoring.config_volume("admin", secret=secret.metadata.name),
            data_volume,
            tmp_volume,
        ],
    )
