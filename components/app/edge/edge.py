"""``Edge``: the platform's front door, nginx between the load balancer and the Django server,
serving the Flutter web build.

Creates, in the application's namespace: the ``edge-config`` ConfigMap (the nginx
configuration rendered from the stack's settings by ``config``, with the maintenance page); the
``edge`` Deployment running the ``web`` image (unprivileged nginx with the Flutter build) with
that configuration mounted, restricted and read-only with emptyDirs for nginx's writable
paths, probed on nginx's own health location and spread over zones, with two metrics sidecars
(``sidecars``: nginx's stub_status and the decisions of its metrics log, for Prometheus); its
Service; its HPA, PDB and VPA; and the NetworkPolicy that lets only the load balancer reach the
edge (and Prometheus its sidecars' metrics ports) and the edge reach only the server. The pod
template carries a checksum of the configuration, so a change of it (maintenance mode included)
rolls the edge pods and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.app.edge.config import (
    HEALTH_PATH,
    LOG_METRICS_PORT,
    NGINX_METRICS_PORT,
    PORT,
    AgentLists,
    EdgeConfig,
    read_referrers,
    render,
)
from components.app.edge.sidecars import logs_volume, metrics_sidecars, nginx_logs_mount
from components.app.rollout import rolling_deployment
from components.app.scaling import Scaling, autoscale
from components.app.scope import EDGE, AppScope
from components.app.workloads import Workloads
from components.lib.component import Component
from components.lib.kube.network_policies import Allowance, Peer, Port, allow
from components.lib.kube.pods import (
    app_pool,
    checksum,
    container_security_context,
    pod_security_context,
    spread,
    writable,
)
from components.lib.kube.service import ServiceBackend
from components.lib.naming import Naming
from components.settings import EdgeSettings

COMPONENT = "edge"
SERVICE_PORT = PORT
"""The Service's port is the pods' port (the VPC CNI's network policy agent matches traffic
to a ClusterIP only when the two are equal)."""
PREFIX = "/usr/share/nginx/"
"""nginx's prefix in the image: ``html/`` is the Flutter build (the image's), ``edge/`` the
ConfigMap, ``run/`` and ``logs/`` the only writable folders (emptyDirs)."""
CONFIG_DIR = f"{PREFIX}edge"
RUN_DIR = f"{PREFIX}run"
NGINX = ("nginx", "-p", PREFIX, "-c", f"{CONFIG_DIR}/nginx.conf", "-e", "stderr")
PRE_STOP_SECONDS = 15
"""Pause before nginx stops: the load balancer controller deregisters the pod meanwhile."""
DRAIN_SECONDS = 60
"""nginx's graceful stop (``quit``) finishes requests in flight, up to the proxy timeout."""
CPU_TARGET_PERCENT = 70
SCALE_DOWN_STABILIZATION_SECONDS = 300

core = k8s.core.v1
meta = k8s.meta.v1


@dataclass(frozen=True)
class EdgeArgs:
    settings: EdgeSettings
    """Size, limits, block and allow lists and maintenance mode."""
    server: ServiceBackend
    """The server's Service (the upstream) in the namespace the edge runs in."""
    image: pulumi.Input[str]
    """The ``web`` image (nginx and the Flutter build), pinned by digest."""
    metrics_image: pulumi.Input[str]
    """The ``edgemetrics`` image (the log-to-metrics sidecar, ``sidecars``), pinned by digest."""
    trusted_proxy_cidrs: tuple[str, ...]
    """Where the load balancer is: X-Forwarded-For is believed from there only (the VPC)."""
    load_balancer_cidrs: tuple[str, ...]
    """Where the ALB's nodes are (the public subnets): the only source of edge traffic."""
    naming: Naming
    """Names and labels of the stack."""
    kubernetes: k8s.Provider
    """The cluster's provider."""


class Edge(Component):
    """nginx in front of the server (``depends_on``: ``Workloads``, whose namespace it runs in
    and whose Service nginx resolves when it starts)."""

    TYPE = "exposcholar:edge:Edge"

    backend: ServiceBackend
    """The edge's Service: what the Ingress routes to."""
    config_checksum: pulumi.Output[str]
    """SHA-256 of the rendered configuration (on the pod template: a change rolls the pods)."""

    def __init__(
        self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        self.require(Workloads, "the namespace and the server's Service it proxies to")
        k8s_opts = self.child_opts(provider=args.kubernetes)
        scope = AppScope(name, args.server.namespace, args.naming, COMPONENT)
        # the lists are read now: a malformed one fails the preview naming its file and line
        agents, referrers = AgentLists.load(), read_referrers()
        files = pulumi.Output.all(args.server.service, args.server.namespace).apply(
            lambda values: render(
                EdgeConfig(
                    settings=args.settings,
                    upstream=f"{values[0]}.{values[1]}.svc.cluster.local:{args.server.port}",
                    trusted_proxies=args.trusted_proxy_cidrs,
                    agents=agents,
                    referrers=referrers,
                )
            )
        )
        config = core.ConfigMap(
            f"{name}-config",
            metadata=scope.meta(f"{EDGE}-config", EDGE),
            data=files,
            opts=k8s_opts,
        )
        self.config_checksum = files.apply(checksum)
        deployment = rolling_deployment(
            f"{name}-deployment",
            scope,
            EDGE,
            _pod_spec(scope, args, config),
            self.config_checksum,
            opts=k8s_opts,
        )
        service = core.Service(
            f"{name}-service",
            metadata=scope.meta(EDGE, EDGE),
            spec=core.ServiceSpecArgs(
                type="ClusterIP",
                selector=scope.selector(EDGE),
                ports=[
                    core.ServicePortArgs(
                        name="http", port=SERVICE_PORT, target_port="http", protocol="TCP"
                    )
                ],
            ),
            opts=k8s_opts,
        )
        settings = args.settings
        autoscale(
            scope,
            Scaling(
                prefix=name,
                part=EDGE,
                min_replicas=settings.min_replicas,
                max_replicas=settings.max_replicas,
                cpu_target_percent=CPU_TARGET_PERCENT,
                memory_target_percent=None,
                scale_down_stabilization_seconds=SCALE_DOWN_STABILIZATION_SECONDS,
                max_allowed=settings.resources.limits(),
                container=EDGE,  # nginx's load, not its metrics sidecars'
            ),
            opts=pulumi.ResourceOptions.merge(
                k8s_opts, pulumi.ResourceOptions(depends_on=[deployment])
            ),
        )
        allow(
            f"{name}-netpol",
            Allowance(
                EDGE,
                scope.selector(EDGE),
                ingress=(
                    Peer((Port(PORT),), cidrs=args.load_balancer_cidrs),
                    Peer.probes(PORT),  # the health location, probed by the blackbox exporter
                    Peer.monitoring(NGINX_METRICS_PORT[1]),  # the metrics sidecars
                    Peer.monitoring(LOG_METRICS_PORT[1]),
                ),
                egress=(Peer((Port(args.server.pod_port),), pods=args.server.pods),),
            ),
            namespace=scope.namespace,
            naming=args.naming,
            opts=k8s_opts,
        )
        self.backend = ServiceBackend(
            namespace=scope.namespace,
            service=service.metadata.name,
            port=SERVICE_PORT,
            health_check_path=HEALTH_PATH,
            pods=scope.selector(EDGE),
            pod_port=PORT,
        )
        self.register()


def _pod_spec(scope: AppScope, args: EdgeArgs, config: core.ConfigMap) -> core.PodSpecArgs:
    """nginx as the image's user, the configuration read-only under ``CONFIG_DIR``, an
    emptyDir for pid and temp files, probes on the health location, a graceful stop."""
    run_volume, run_mount = writable("run", RUN_DIR, size="256Mi")
    probe = core.HTTPGetActionArgs(path=HEALTH_PATH, port="http")
    resources = args.settings.resources
    # nginx is the container's PID 1: QUIT stops it gracefully (requests in flight finish)
    stop = f"sleep {PRE_STOP_SECONDS}; kill -QUIT 1; while kill -0 1 2>/dev/null; do sleep 1; done"
    return core.PodSpecArgs(
        automount_service_account_token=False,
        enable_service_links=False,
        security_context=pod_security_context(),
        node_selector=app_pool(),
        topology_spread_constraints=spread(scope.selector(EDGE)),
        termination_grace_period_seconds=PRE_STOP_SECONDS + DRAIN_SECONDS + 5,
        containers=[
            core.ContainerArgs(
                name=EDGE,
                image=args.image,
                image_pull_policy="Always",
                command=list(NGINX),
                args=["-g", "daemon off;"],
                ports=[core.ContainerPortArgs(name="http", container_port=PORT, protocol="TCP")],
                resources=core.ResourceRequirementsArgs(
                    requests=resources.requests(), limits=resources.limits()
                ),
                startup_probe=core.ProbeArgs(
                    http_get=probe, period_seconds=2, failure_threshold=30, timeout_seconds=2
                ),
                readiness_probe=core.ProbeArgs(
                    http_get=probe, period_seconds=5, failure_threshold=2, timeout_seconds=2
                ),
                # liveness: the process accepts connections (restarting cannot fix an HTTP
                # answer readiness already takes the pod out of the load balancer for)
                liveness_probe=core.ProbeArgs(
                    tcp_socket=core.TCPSocketActionArgs(port="http"),
                    period_seconds=10,
                    failure_threshold=3,
                    timeout_seconds=2,
                ),
                lifecycle=core.LifecycleArgs(
                    pre_stop=core.LifecycleHandlerArgs(
                        exec_=core.ExecActionArgs(command=["/bin/sh", "-c", stop])
                    )
                ),
                security_context=container_security_context(),
                volume_mounts=[
                    core.VolumeMountArgs(name="config", mount_path=CONFIG_DIR, read_only=True),
                    run_mount,
                    nginx_logs_mount(PREFIX),
                ],
            ),
        ],
        init_containers=metrics_sidecars(args.metrics_image),
        volumes=[
            core.VolumeArgs(
                name="config",
                config_map=core.ConfigMapVolumeSourceArgs(
                    name=config.metadata.name, default_mode=0o444
                ),
            ),
            run_volume,
            logs_volume(),
        ],
    )
