"""Prometheus's server configuration (``prometheus.yml``) from the stack's settings.

What it scrapes, each under a fixed ``job`` label the alert rules and dashboards select on:

* ``prometheus``: itself, ``localhost:9090``;
* ``alertmanager``: endpoints of Service ``alertmanager`` (port ``http``, 9093) in monitoring;
* ``apiserver``: endpoints of ``default/kubernetes`` (port ``https``), with the bearer token;
* ``kubelet`` and ``cadvisor``: every node through the API server's node proxy
  (``/api/v1/nodes/<node>/proxy/metrics`` and ``.../metrics/cadvisor``);
* ``node-exporter``: endpoints of Service ``node-exporter`` (port ``metrics``, 9100) in the
  ``node-exporter`` namespace (it needs host access, so it has a namespace of its own);
* ``kube-state-metrics``: endpoints of Service ``kube-state-metrics`` (port ``http-metrics``,
  8080) in monitoring; ``honor_labels`` keeps the namespace and pod of the objects it reports;
* ``django``: pods ``app.kubernetes.io/name=server`` in ``exposcholar``, container port
  ``metrics`` (8001);
* ``edge-nginx``: edge pods, sidecar port ``nginx-metrics`` (9113, nginx-prometheus-exporter
  reading stub_status);
* ``edge-logs``: edge pods, sidecar port ``log-metrics`` (3903, the log-to-metrics exporter over
  the edge's JSON metrics log, components.app.edge.sidecars; mtail's default port);
* ``postgres-exporter`` / ``redis-exporter``: endpoints of the Services of those names (port
  ``metrics``, 9187 / 9121) in ``exposcholar``, where they run beside the database credentials
  on the nodes the data stores admit (``components.monitoring.exporters``);
* ``blackbox-exporter``: endpoints of Service ``blackbox-exporter`` (port ``http``, 9115);
* ``blackbox-https``: probe of the public URL ``https://<appHost>/healthz`` (module
  ``https_2xx``): DNS, the certificate, the load balancer and the edge, whatever the
  maintenance mode (the edge answers its health check itself, 200 in maintenance too, so
  switching maintenance changes only the edge's ConfigMap and rolls nothing here);
* ``blackbox-tls``: TLS handshake of ``<appHost>:443`` (module ``tls_connect``);
* ``blackbox-internal``: the in-cluster Services' health endpoints (module ``http_2xx``).

The pod and endpoint jobs keep the ``namespace``, ``pod`` and (endpoints) ``service`` labels
the rules aggregate by. Files: the configuration sits at ``/etc/prometheus/prometheus.yml`` and
the rule files beside it under ``rules/`` (``rule_files`` paths are relative to the
configuration file), so the cluster part mounts the rules ConfigMap at ``/etc/prometheus/rules``.
Kubernetes discovery and the API server proxy use the pod's service account token and CA (the
default in-cluster files). Field names are Prometheus 2.x/3.x's (``authorization``, not the
deprecated ``bearer_token_file``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from components.app.edge.config import HEALTH_PATH as EDGE_HEALTH_PATH
from components.app.edge.config import LOG_METRICS_PORT, NGINX_METRICS_PORT
from components.app.edge.config import PORT as EDGE_PORT
from components.app.pod_spec import HEALTH, HTTP_PORT
from components.app.scope import EDGE, NAMESPACE, SERVER
from components.settings import StackSettings

MONITORING_NAMESPACE = "monitoring"
NODE_EXPORTER_NAMESPACE = "node-exporter"
"""node-exporter needs host access (host PID, network and root filesystem), which Pod Security
``restricted`` forbids: it gets a namespace of its own, so ``monitoring`` stays restricted."""
APP_NAMESPACE = NAMESPACE

SCRAPE_INTERVAL = "30s"
SCRAPE_TIMEOUT = "10s"
EVALUATION_INTERVAL = "30s"
"""Rules are evaluated as often as targets are scraped: an alert's ``for`` counts in these."""

ALERTMANAGER_SERVICE = "alertmanager"
ALERTMANAGER_PORT_NAME = "http"
BLACKBOX_SERVICE = "blackbox-exporter"
BLACKBOX_PORT = 9115
BLACKBOX_ADDRESS = f"{BLACKBOX_SERVICE}.{MONITORING_NAMESPACE}.svc:{BLACKBOX_PORT}"
EDGE_NGINX_METRICS_PORT = NGINX_METRICS_PORT
"""The edge's nginx-prometheus-exporter sidecar: container port name and number."""
EDGE_LOG_METRICS_PORT = LOG_METRICS_PORT
"""The edge's log-to-metrics exporter sidecar (blocked bots, honeypot hits, rate-limited and
maintenance answers, by status, from the edge's metrics log): port name and number."""

EXPORTER_SERVICES = {
    "node-exporter": (NODE_EXPORTER_NAMESPACE, "node-exporter", "metrics"),
    "kube-state-metrics": (MONITORING_NAMESPACE, "kube-state-metrics", "http-metrics"),
    "postgres-exporter": (APP_NAMESPACE, "postgres-exporter", "metrics"),
    "redis-exporter": (APP_NAMESPACE, "redis-exporter", "metrics"),
    "blackbox-exporter": (MONITORING_NAMESPACE, BLACKBOX_SERVICE, "http"),
}
"""job -> (namespace, Service, port name) of the exporters found through their endpoints."""

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_IN_CLUSTER_AUTH: dict[str, Any] = {
    "scheme": "https",
    "authorization": {"type": "Bearer", "credentials_file": f"{SERVICE_ACCOUNT_DIR}/token"},
    "tls_config": {"ca_file": f"{SERVICE_ACCOUNT_DIR}/ca.crt", "insecure_skip_verify": False},
}
"""Prometheus's own service account against the API server (and its node proxy)."""
API_SERVER = "kubernetes.default.svc:443"


def _sd(role: str, *namespaces: str) -> list[dict[str, Any]]:
    config: dict[str, Any] = {"role": role}
    if namespaces:
        config["namespaces"] = {"names": list(namespaces)}
    return [config]


def _keep(labels: Sequence[str], regex: str) -> dict[str, Any]:
    return {"source_labels": list(labels), "regex": regex, "action": "keep"}


def _copy(source: str, target: str) -> dict[str, Any]:
    return {"source_labels": [source], "target_label": target}


_POD_LABELS = [
    _copy("__meta_kubernetes_namespace", "namespace"),
    _copy("__meta_kubernetes_pod_name", "pod"),
    _copy("__meta_kubernetes_pod_node_name", "node"),
]


def _endpoints_job(job: str, namespace: str, service: str, port: str) -> dict[str, Any]:
    """A Service's ready endpoints on one named port, labelled with namespace, service, pod."""
    return {
        "job_name": job,
        "kubernetes_sd_configs": _sd("endpoints", namespace),
        "relabel_configs": [
            _keep(
                ["__meta_kubernetes_service_name", "__meta_kubernetes_endpoint_port_name"],
                f"{service};{port}",
            ),
            _copy("__meta_kubernetes_service_name", "service"),
            *_POD_LABELS,
        ],
    }


def _pod_job(job: str, namespace: str, name: str, port: str) -> dict[str, Any]:
    """Pods labelled ``app.kubernetes.io/name=<name>``, on the container port named ``port``
    (sidecars need no Service port of their own)."""
    return {
        "job_name": job,
        "kubernetes_sd_configs": _sd("pod", namespace),
        "relabel_configs": [
            _keep(
                [
                    "__meta_kubernetes_pod_label_app_kubernetes_io_name",
                    "__meta_kubernetes_pod_container_port_name",
                ],
                f"{name};{port}",
            ),
            _keep(["__meta_kubernetes_pod_phase"], "Running"),
            *_POD_LABELS,
            _copy("__meta_kubernetes_pod_container_name", "container"),
        ],
    }


CADVISOR_DROPPED = (
    "container_cpu_(cfs_throttled_seconds_total|load_average_10s|system_seconds_total"
    "|user_seconds_total)"
    "|container_fs_(io_current|io_time_seconds_total|io_time_weighted_seconds_total"
    "|reads_merged_total|sector_reads_total|sector_writes_total|writes_merged_total)"
    "|container_memory_(mapped_file|swap)"
    "|container_(file_descriptors|tasks_state|threads_max)"
    "|container_spec_.*"
)
"""cAdvisor series no rule or dashboard uses and that multiply with every container (the
list kube-prometheus drops); the tests check none of ``metrics.yaml`` matches."""


def _node_proxy_job(job: str, path: str) -> dict[str, Any]:
    """Every node's kubelet through the API server proxy: no direct route to port 10250, one
    credential (the service account's) and the API server's certificate. ``instance`` and
    ``node`` are the node's name (the address is the API server's, the same for every node)."""
    return {
        "job_name": job,
        **_IN_CLUSTER_AUTH,
        "kubernetes_sd_configs": _sd("node"),
        "relabel_configs": [
            _copy("__meta_kubernetes_node_name", "node"),
            _copy("__meta_kubernetes_node_name", "instance"),
            {"target_label": "__address__", "replacement": API_SERVER},
            {
                "source_labels": ["__meta_kubernetes_node_name"],
                "regex": "(.+)",
                "target_label": "__metrics_path__",
                "replacement": f"/api/v1/nodes/$1/proxy{path}",
            },
        ],
    }


def _probe_job(job: str, module: str, targets: Sequence[str]) -> dict[str, Any]:
    """blackbox_exporter probes: each target becomes the ``target`` parameter and the
    ``instance`` label, and the scrape goes to the exporter."""
    return {
        "job_name": job,
        "metrics_path": "/probe",
        "params": {"module": [module]},
        "scrape_interval": SCRAPE_INTERVAL,
        "static_configs": [{"targets": list(targets)}],
        "relabel_configs": [
            _copy("__address__", "__param_target"),
            _copy("__param_target", "instance"),
            {"target_label": "__address__", "replacement": BLACKBOX_ADDRESS},
        ],
    }


def public_url(settings: StackSettings) -> str:
    """The site as users reach it, at the edge's health check (200 in maintenance too)."""
    return f"https://{settings.workloads.host}{EDGE_HEALTH_PATH}"


def internal_probe_targets() -> list[str]:
    """The in-cluster Services' health endpoints: the edge and the server's readiness."""
    return [
        f"http://{EDGE}.{APP_NAMESPACE}.svc:{EDGE_PORT}{EDGE_HEALTH_PATH}",
        f"http://{SERVER}.{APP_NAMESPACE}.svc:{HTTP_PORT}{HEALTH['ready']}",
    ]


def scrape_configs(settings: StackSettings) -> list[dict[str, Any]]:
    """Every scrape job (see the module's table)."""
    return [
        {"job_name": "prometheus", "static_configs": [{"targets": ["localhost:9090"]}]},
        _endpoints_job("alertmanager", MONITORING_NAMESPACE, ALERTMANAGER_SERVICE, "http"),
        {
            "job_name": "apiserver",
            **_IN_CLUSTER_AUTH,
            # the endpoints are the control plane's addresses; its certificate names the
            # Service (``kubernetes``), not them
            "tls_config": {**_IN_CLUSTER_AUTH["tls_config"], "server_name": "kubernetes"},
            "kubernetes_sd_configs": _sd("endpoints", "default"),
            "relabel_configs": [
                _keep(
                    ["__meta_kubernetes_service_name", "__meta_kubernetes_endpoint_port_name"],
                    "kubernetes;https",
                )
            ],
        },
        _node_proxy_job("kubelet", "/metrics"),
        {
            **_node_proxy_job("cadvisor", "/metrics/cadvisor"),
            "metric_relabel_configs": [
                {"source_labels": ["__name__"], "regex": CADVISOR_DROPPED, "action": "drop"}
            ],
        },
        *(
            {
                **_endpoints_job(job, namespace, service, port),
                # kube-state-metrics reports other objects' namespace and pod: keep those
                **({"honor_labels": True} if job == "kube-state-metrics" else {}),
            }
            for job, (namespace, service, port) in EXPORTER_SERVICES.items()
        ),
        _pod_job("django", APP_NAMESPACE, SERVER, "metrics"),
        _pod_job("edge-nginx", APP_NAMESPACE, EDGE, EDGE_NGINX_METRICS_PORT[0]),
        _pod_job("edge-logs", APP_NAMESPACE, EDGE, EDGE_LOG_METRICS_PORT[0]),
        _probe_job("blackbox-https", "https_2xx", [public_url(settings)]),
        _probe_job("blackbox-tls", "tls_connect", [f"{settings.workloads.host}:443"]),
        _probe_job("blackbox-internal", "http_2xx", internal_probe_targets()),
    ]


def prometheus_config(settings: StackSettings, rule_files: Sequence[str]) -> dict[str, Any]:
    """The configuration document; ``rule_files`` relative to the configuration's folder."""
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": SCRAPE_TIMEOUT,
            "evaluation_interval": EVALUATION_INTERVAL,
            # which stack an alert or a federated series comes from
            "external_labels": {"stack": settings.stack},
        },
        "rule_files": list(rule_files),
        "alerting": {
            "alertmanagers": [
                {
                    "kubernetes_sd_configs": _sd("endpoints", MONITORING_NAMESPACE),
                    "relabel_configs": [
                        _keep(
                            [
                                "__meta_kubernetes_service_name",
                                "__meta_kubernetes_endpoint_port_name",
                            ],
                            f"{ALERTMANAGER_SERVICE};{ALERTMANAGER_PORT_NAME}",
                        )
                    ],
                }
            ]
        },
        "scrape_configs": scrape_configs(settings),
    }


def render_prometheus(settings: StackSettings, rule_files: Sequence[str]) -> str:
    """``prometheus.yml`` as text."""
    return yaml.safe_dump(
        prometheus_config(settings, rule_files), sort_keys=False, width=100, allow_unicode=True
    )
