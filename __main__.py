"""ExpoScholar infrastructure: load the stack's settings once, compose the components, export.

Components never read configuration: they get settings and each other's outputs. Ordering is
said once, with ``depends_on`` on the component (``components.lib.component``).
"""

import pulumi

from components.app.edge.edge import Edge, EdgeArgs
from components.app.ingress import Ingress, IngressArgs
from components.app.workloads import Workloads, WorkloadsArgs
from components.aws.cache import Cache, CacheArgs
from components.aws.database import Database, DatabaseArgs
from components.aws.deploy_access import GitHubDeployAccess, GitHubDeployAccessArgs
from components.aws.images import Images, ImagesArgs
from components.aws.keys import Keys, KeysArgs
from components.aws.network import Network, NetworkArgs
from components.aws.storage import Storage, StorageArgs
from components.backups.backups import Backups, BackupsArgs
from components.eks.addons import ClusterAddons, ClusterAddonsArgs
from components.eks.cluster import Cluster, ClusterArgs
from components.eks.nodes import NodeGroup, NodeGroupArgs, node_pools
from components.lib.naming import Naming
from components.lib.providers import aws_provider, docker_provider, kubernetes_provider
from components.monitoring.alerting import Alerting, AlertingArgs
from components.monitoring.exporters import DatabaseExporters, DatabaseExportersArgs
from components.monitoring.grafana import Grafana, GrafanaArgs
from components.monitoring.monitoring import Monitoring, MonitoringArgs
from components.platform.autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.platform.external_secrets import ExternalSecretsOperator
from components.platform.external_secrets import ExternalSecretsOperatorArgs as SecretsArgs
from components.platform.load_balancer_controller import NAMESPACE as LB_NAMESPACE
from components.platform.load_balancer_controller import LoadBalancerController
from components.platform.load_balancer_controller import LoadBalancerControllerArgs as LbArgs
from components.platform.vpa import VerticalPodAutoscaler, VerticalPodAutoscalerArgs
from components.settings import KUBERNETES_SERVICE_IP, load_settings
from components.settings.subnets import Tier

# ── Settings ────────────────────────────────────────────────────────────────────────────────
settings = load_settings()
naming = Naming.for_stack(settings)
account = settings.account
replica_region = settings.storage.replica_region
protect = settings.is_production
aws = aws_provider("aws", settings, naming)
aws_replica = (
    aws_provider("aws-replica", settings, naming, region=replica_region) if replica_region else None
)
with_aws = pulumi.ResourceOptions(providers=[aws])

# ── Keys (first: the network's flow logs use the logs key) ──────────────────────────────────
keys = Keys(
    "keys",
    KeysArgs(
        naming=naming,
        account_id=account.account_id,
        region=account.region,
        admin_role_arns=account.admin_role_arns,
        rotation_days=account.kms_key_rotation_days,
        protect=protect,
        replica_region=replica_region,
        replica_provider=aws_replica,
    ),
    opts=with_aws,
)

# ── Network ─────────────────────────────────────────────────────────────────────────────────
network = Network(
    "network",
    NetworkArgs(
        settings=settings.network,
        naming=naming,
        region=account.region,
        account_id=account.account_id,
        cluster_name=naming.cluster_name,
        logs_key_arn=keys.logs_key_arn,
    ),
    opts=with_aws,
)

# ── Storage and who may deploy ──────────────────────────────────────────────────────────────
storage = Storage(
    "storage",
    StorageArgs(
        settings=settings.storage,
        naming=naming,
        account_id=account.account_id,
        region=account.region,
        backups_key_arn=keys.backups_key_arn,
        storage_key_arn=keys.storage_key_arn,
        protect=protect,
        admin_role_arns=account.admin_role_arns,
        replica_key_arn=keys.backups_replica_key_arn,
        replica_provider=aws_replica,
    ),
    opts=with_aws,
)
deploy_access = GitHubDeployAccess(
    "deploy",
    GitHubDeployAccessArgs(
        settings=settings.deploy,
        naming=naming,
        account_id=account.account_id,
        production=settings.is_production,
        data_buckets=storage.private_buckets,
        region=account.region,
        protect=protect,
    ),
    opts=with_aws,
)

# ── Cluster ─────────────────────────────────────────────────────────────────────────────────
cluster = Cluster(
    "cluster",
    ClusterArgs(
        settings=settings.cluster,
        naming=naming,
        account_id=account.account_id,
        region=account.region,
        subnet_ids=network.private_subnet_ids,
        secrets_key_arn=keys.cluster_key_arn,
        logs_key_arn=keys.logs_key_arn,
        admin_role_arns=account.admin_role_arns,
        deploy_role_arns=[deploy_access.deploy_role_arn],
        preview_role_arns=[deploy_access.preview_role_arn],
        # the load balancer controller's chart looks up its webhook certificate's Secret
        preview_secret_namespaces=[LB_NAMESPACE],
    ),
    # created after, destroyed before, everything of the VPC (docs/teardown.md)
    opts=pulumi.ResourceOptions(providers=[aws], depends_on=[network]),
)
node_groups = [
    NodeGroup(
        f"nodes-{pool.role}",
        NodeGroupArgs(
            settings=pool.settings,
            role=pool.role,
            naming=naming,
            cluster_name=cluster.name,
            cluster=cluster.eks_name,
            node_role_arn=cluster.node_role_arn,
            subnet_ids=network.private_subnet_ids,
            security_group_id=cluster.node_security_group_id,
            disk_size_gb=settings.cluster.node_disk_size_gb,
            taints=pool.taints,
        ),
        opts=pulumi.ResourceOptions(providers=[aws], depends_on=[cluster]),
    )
    for pool in node_pools(settings.cluster)
]
kubernetes = kubernetes_provider("k8s", cluster.kubeconfig)
addons = ClusterAddons(
    "addons",
    ClusterAddonsArgs(
        cluster_name=cluster.eks_name,
        versions=settings.cluster.addons,
        oidc=cluster.oidc,
        naming=naming,
        kubernetes=kubernetes,
    ),
    opts=pulumi.ResourceOptions(providers=[aws], depends_on=node_groups),
)
images = Images(
    "images",
    ImagesArgs(
        settings=settings.images,
        naming=naming,
        kms_key_arn=keys.images_key_arn,
        runs_on=settings.cluster.app_nodes,
        protect=protect,
        build_args={"backup": {"PG_MAJOR": settings.database.engine_version}},
    ),
    opts=pulumi.ResourceOptions(providers=[aws, docker_provider("docker")]),
)

# ── Data stores: isolated subnets, reachable only from the cluster's nodes ─────────────────
data_placement = network.data_placement([cluster.node_security_group_id])
database = Database(
    "database",
    DatabaseArgs(
        settings=settings.database,
        naming=naming,
        account_id=account.account_id,
        placement=data_placement,
        kms_key_arn=keys.data_key_arn,
        logs_key_arn=keys.logs_key_arn,
        protect=protect,
    ),
    opts=with_aws,
)
cache = Cache(
    "cache",
    CacheArgs(
        settings=settings.cache,
        naming=naming,
        placement=data_placement,
        kms_key_arn=keys.data_key_arn,
        logs_key_arn=keys.logs_key_arn,
        protect=protect,
    ),
    opts=with_aws,
)


# ── Platform controllers: on the nodes, after the add-ons (DNS, metrics, storage) ──────────
def on_cluster(*after: pulumi.Resource) -> pulumi.ResourceOptions:
    """Options of a component on the cluster: it waits for the nodes, the add-ons and
    ``after``."""
    return pulumi.ResourceOptions(
        providers=[aws, kubernetes], depends_on=[*node_groups, addons, *after]
    )


secrets_operator = ExternalSecretsOperator(
    "external-secrets",
    SecretsArgs(
        naming=naming,
        cluster_version=settings.cluster.version,
        kubernetes=kubernetes,
        control_plane_cidrs=network.subnet_cidrs[Tier.PRIVATE],
    ),
    opts=on_cluster(),
)
vpa = VerticalPodAutoscaler("vpa", VerticalPodAutoscalerArgs(kubernetes), opts=on_cluster())
ClusterAutoscaler(
    "autoscaler",
    ClusterAutoscalerArgs(
        cluster_name=cluster.name,
        cluster_version=settings.cluster.version,
        oidc=cluster.oidc,
        naming=naming,
        kubernetes=kubernetes,
    ),
    opts=on_cluster(vpa),
)
load_balancers = LoadBalancerController(
    "lb-controller",
    LbArgs(
        cluster_name=cluster.name,
        region=account.region,
        vpc_id=network.vpc_id,
        oidc=cluster.oidc,
        naming=naming,
        kubernetes=kubernetes,
    ),
    opts=on_cluster(),
)

# ── Workloads, the edge and the public entry ────────────────────────────────────────────────
app = settings.workloads
workloads = Workloads(
    "app",
    WorkloadsArgs(
        settings=app,
        naming=naming,
        region=account.region,
        cluster_version=settings.cluster.version,
        oidc=cluster.oidc,
        kubernetes=kubernetes,
        server_image=images.ref("server"),
        database=database.connection,
        cache=cache.connection,
        buckets=storage.app_buckets,
        data_cidrs=network.subnet_cidrs[Tier.ISOLATED],
    ),
    opts=on_cluster(secrets_operator, vpa),
)
edge = Edge(
    "edge",
    EdgeArgs(
        settings=settings.edge,
        server=workloads.backend,
        image=images.ref("web"),
        metrics_image=images.ref("edgemetrics"),
        trusted_proxy_cidrs=(settings.network.vpc_cidr,),
        load_balancer_cidrs=network.subnet_cidrs[Tier.PUBLIC],
        naming=naming,
        kubernetes=kubernetes,
    ),
    opts=on_cluster(vpa, workloads),
)
Ingress(
    "ingress",
    IngressArgs(
        backend=edge.backend,  # everything enters through the edge
        host=app.host,
        certificate_arn=app.certificate_arn,
        hosted_zone_id=app.hosted_zone_id,
        waf_acl_arn=app.waf_acl_arn,
        naming=naming,
        kubernetes=kubernetes,
    ),
    opts=pulumi.ResourceOptions(providers=[aws, kubernetes], depends_on=[load_balancers, edge]),
)

# ── Backups: CronJobs in the application's namespace, beside its database credentials ─────
backups = Backups(
    "backups",
    BackupsArgs(
        settings=settings.backups,
        naming=naming,
        region=account.region,
        account_id=account.account_id,
        oidc=cluster.oidc,
        kubernetes=kubernetes,
        image=images.ref("backup"),
        namespace=workloads.namespace,
        database=database.connection,
        cache_group_id=cache.replication_group_id,
        cache_key_arn=keys.data_key_arn,
        backups_bucket=storage.backups_bucket,
        backups_bucket_arn=storage.backups_bucket_arn,
        backups_key_arn=keys.backups_key_arn,
        media=storage.app_buckets,
        data_cidrs=network.subnet_cidrs[Tier.ISOLATED],
    ),
    opts=on_cluster(workloads),
)

# ── Monitoring: Prometheus and its core targets (namespace shared with alerting, Grafana) ──
monitoring = Monitoring(
    "monitoring",
    MonitoringArgs(
        settings=settings,
        naming=naming,
        kubernetes=kubernetes,
        api_server_cidrs=(*network.subnet_cidrs[Tier.PRIVATE], f"{KUBERNETES_SERVICE_IP}/32"),
        node_cidrs=network.subnet_cidrs[Tier.PRIVATE],
    ),
    opts=on_cluster(),
)

alerting = Alerting(
    "alerting",
    AlertingArgs(
        settings=settings.alerting,
        namespace=monitoring.namespace,
        naming=naming,
        kubernetes=kubernetes,
    ),
    opts=on_cluster(monitoring),
)
Grafana(
    "grafana",
    GrafanaArgs(
        admin_password=settings.grafana_admin_password,
        namespace=monitoring.namespace,
        naming=naming,
        kubernetes=kubernetes,
    ),
    opts=on_cluster(monitoring),
)
# postgres_exporter and redis_exporter run beside the database credentials, on the app nodes
DatabaseExporters(
    "exporters",
    DatabaseExportersArgs(
        naming=naming,
        kubernetes=kubernetes,
        namespace=workloads.namespace,
        database=database.connection,
        cache=cache.connection,
        client_image=images.ref("backup"),
        data_cidrs=network.subnet_cidrs[Tier.ISOLATED],
    ),
    opts=on_cluster(secrets_operator, workloads),
)

# ── Exports ─────────────────────────────────────────────────────────────────────────────────
for key, value in {
    "region": account.region,
    "vpcId": network.vpc_id,
    "vpcCidr": network.vpc_cidr,
    "availabilityZones": list(network.zones),
    "publicSubnetIds": network.public_subnet_ids,
    "privateSubnetIds": network.private_subnet_ids,
    "isolatedSubnetIds": network.isolated_subnet_ids,
    "databaseEndpoint": database.endpoint,
    "databasePort": database.port,
    "databaseName": database.database_name,
    "databaseSecurityGroupId": database.security_group_id,
    "databaseMasterSecretArn": database.master_secret_arn,
    "cachePrimaryEndpoint": cache.primary_endpoint,
    "cacheReaderEndpoint": cache.reader_endpoint,
    "cachePort": cache.port,
    "cacheSecurityGroupId": cache.security_group_id,
    "backupsBucket": storage.backups_bucket,
    "staticBucket": storage.static_bucket,
    "mediaBucket": storage.media_bucket,
    "backupsReplicaBucket": storage.replica_bucket,
    "clusterName": cluster.name,
    "clusterEndpoint": cluster.endpoint,
    "clusterOidcProviderArn": cluster.oidc.provider_arn,
    "nodeSecurityGroupId": cluster.node_security_group_id,
    "kubeconfig": cluster.kubeconfig,
    "imageRepositories": images.repository_urls,
    "images": images.refs,
    "appNamespace": workloads.namespace,
    "appHost": app.host,
    "backupCronJobs": backups.cron_jobs,
    "githubPreviewRoleArn": deploy_access.preview_role_arn,
    "githubDeployRoleArn": deploy_access.deploy_role_arn,
}.items():
    pulumi.export(key, value)
