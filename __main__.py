"""ExpoScholar infrastructure: load the stack's settings once, compose the components, export.

Components never read configuration themselves: they get settings and each other's outputs.
"""

import pulumi

from components.app.ingress import AppIngress, AppIngressArgs
from components.app.workloads import (
    HEALTH,
    CacheEndpoint,
    DatabaseEndpoint,
    MediaBuckets,
    Workloads,
    WorkloadsArgs,
)
from components.aws.cache import Cache, CacheArgs
from components.aws.database import Database, DatabaseArgs
from components.aws.deploy_access import GitHubDeployAccess, GitHubDeployAccessArgs
from components.aws.images import Images, ImagesArgs
from components.aws.keys import Keys, KeysArgs
from components.aws.network import Network, NetworkArgs
from components.aws.storage import Storage, StorageArgs
from components.eks.addons import ClusterAddons, ClusterAddonsArgs
from components.eks.cluster import Cluster, ClusterArgs
from components.eks.nodes import NodeGroup, NodeGroupArgs
from components.lib.aws import Placement
from components.lib.kube.pods import SYSTEM_TAINTS
from components.lib.naming import Naming
from components.lib.providers import aws_provider, docker_provider, kubernetes_provider
from components.platform.autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.platform.external_secrets import (
    ExternalSecretsOperator,
    ExternalSecretsOperatorArgs,
)
from components.platform.load_balancer_controller import NAMESPACE as LB_NAMESPACE
from components.platform.load_balancer_controller import (
    LoadBalancerController,
    LoadBalancerControllerArgs,
)
from components.platform.vpa import VerticalPodAutoscaler, VerticalPodAutoscalerArgs
from components.settings import load_settings
from components.settings.subnets import Tier

settings = load_settings()
naming = Naming.for_stack(settings)
account = settings.account
replica_region = settings.storage.replica_region
aws = aws_provider("aws", settings, naming)
aws_replica = (
    aws_provider("aws-replica", settings, naming, region=replica_region) if replica_region else None
)
with_aws = pulumi.ResourceOptions(providers=[aws])
protect = settings.is_production

network = Network(
    "network",
    NetworkArgs(
        settings=settings.network,
        naming=naming,
        region=account.region,
        account_id=account.account_id,
        cluster_name=naming.physical("cluster", "eks"),
    ),
    opts=with_aws,
)
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
storage = Storage(
    "storage",
    StorageArgs(
        settings=settings.storage,
        naming=naming,
        account_id=account.account_id,
        backups_key_arn=keys.backups_key_arn,
        storage_key_arn=keys.storage_key_arn,
        protect=protect,
        admin_role_arns=account.admin_role_arns,
        replica_key_arn=keys.backups_replica_key_arn,
        replica_provider=aws_replica,
    ),
    opts=with_aws,
)

# Who may preview and deploy this stack from GitHub Actions (OIDC; no stored keys).
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

cluster = Cluster(
    "cluster",
    ClusterArgs(
        settings=settings.cluster,
        naming=naming,
        account_id=account.account_id,
        region=account.region,
        subnet_ids=network.private_subnet_ids,
        secrets_key_arn=keys.cluster_key_arn,
        admin_role_arns=account.admin_role_arns,
        deploy_role_arns=[deploy_access.deploy_role_arn],
        preview_role_arns=[deploy_access.preview_role_arn],
        # the load balancer controller's chart looks up its webhook certificate's Secret
        preview_secret_namespaces=[LB_NAMESPACE],
        network_ready=network.egress,
    ),
    # Teardown order: everything on the cluster goes before anything of the VPC.
    opts=pulumi.ResourceOptions(providers=[aws], depends_on=[network]),
)
node_groups = [
    NodeGroup(
        f"nodes-{role}",
        NodeGroupArgs(
            settings=group,
            role=role,
            naming=naming,
            cluster_name=cluster.name,
            cluster=cluster.eks_name,
            node_role_arn=cluster.node_role_arn,
            subnet_ids=network.private_subnet_ids,
            security_group_id=cluster.node_security_group_id,
            disk_size_gb=settings.cluster.node_disk_size_gb,
            ready=cluster.network_addons,
            taints=taints,
        ),
        opts=pulumi.ResourceOptions(providers=[aws], depends_on=[cluster]),
    )
    for role, group, taints in (
        ("system", settings.cluster.system_nodes, SYSTEM_TAINTS),
        ("app", settings.cluster.app_nodes, ()),
    )
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
        node_groups=[group.group for group in node_groups],
    ),
    opts=pulumi.ResourceOptions(providers=[aws], depends_on=node_groups),
)
images = Images(
    "images",
    ImagesArgs(
        settings=settings.images,
        naming=naming,
        kms_key_arn=keys.images_key_arn,
        platform="linux/arm64" if settings.cluster.app_nodes.arm64 else "linux/amd64",
        protect=protect,
        build_args={"backup": {"PG_MAJOR": settings.database.engine_version}},
    ),
    opts=pulumi.ResourceOptions(providers=[aws, docker_provider("docker")]),
)

# The data stores live in the isolated subnets and admit only the cluster's nodes.
data_placement = Placement(
    vpc_id=network.vpc_id,
    subnet_ids=network.isolated_subnet_ids,
    allowed_security_group_ids=[cluster.node_security_group_id],
)
database = Database(
    "database",
    DatabaseArgs(
        settings=settings.database,
        naming=naming,
        account_id=account.account_id,
        placement=data_placement,
        kms_key_arn=keys.data_key_arn,
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
        protect=protect,
    ),
    opts=with_aws,
)
# --- On the cluster -------------------------------------------------------------------------
with_k8s = pulumi.ResourceOptions(providers=[aws, kubernetes])
on_nodes = [*node_groups, addons]
"""What in-cluster objects wait for: nodes to run on, DNS, metrics and storage."""
secrets_operator = ExternalSecretsOperator(
    "external-secrets",
    ExternalSecretsOperatorArgs(
        naming=naming,
        cluster_version=settings.cluster.version,
        kubernetes=kubernetes,
        control_plane_cidrs=network.subnet_cidrs[Tier.PRIVATE],
        depends_on=on_nodes,
    ),
    opts=with_k8s,
)
vpa = VerticalPodAutoscaler(
    "vpa", VerticalPodAutoscalerArgs(kubernetes=kubernetes, depends_on=on_nodes), opts=with_k8s
)
ClusterAutoscaler(
    "autoscaler",
    ClusterAutoscalerArgs(
        cluster_name=cluster.name,
        cluster_version=settings.cluster.version,
        oidc=cluster.oidc,
        naming=naming,
        kubernetes=kubernetes,
        depends_on=on_nodes,
        vpa_ready=vpa.ready,
    ),
    opts=with_k8s,
)
workloads = Workloads(
    "app",
    WorkloadsArgs(
        settings=settings.workloads,
        naming=naming,
        region=account.region,
        cluster_version=settings.cluster.version,
        oidc=cluster.oidc,
        kubernetes=kubernetes,
        server_image=images.refs["server"],
        database=DatabaseEndpoint(
            host=database.address,
            port=database.port,
            name=database.database_name,
            master_secret_arn=database.master_secret_arn,
            key_arn=keys.data_key_arn,
        ),
        cache=CacheEndpoint(
            host=cache.primary_endpoint,
            port=cache.port,
            auth_token=settings.cache.auth_token.output(),
        ),
        buckets=MediaBuckets(
            static_bucket=storage.static_bucket,
            static_arn=storage.static_bucket_arn,
            media_bucket=storage.media_bucket,
            media_arn=storage.media_bucket_arn,
            key_arn=keys.storage_key_arn,
        ),
        secrets_ready=secrets_operator.ready,
        vpa_ready=vpa.ready,
        load_balancer_cidrs=network.subnet_cidrs[Tier.PUBLIC],
        data_cidrs=network.subnet_cidrs[Tier.ISOLATED],
        depends_on=on_nodes,
    ),
    opts=with_k8s,
)
load_balancers = LoadBalancerController(
    "lb-controller",
    LoadBalancerControllerArgs(
        cluster_name=cluster.name,
        region=account.region,
        vpc_id=network.vpc_id,
        oidc=cluster.oidc,
        naming=naming,
        kubernetes=kubernetes,
        depends_on=on_nodes,
    ),
    opts=with_k8s,
)
app = settings.workloads
ingress = AppIngress(
    "ingress",
    AppIngressArgs(
        namespace=workloads.namespace,
        host=app.host,
        # the edge proxy takes this place once it exists
        backend_service=workloads.server_service,
        backend_port=workloads.server_port,
        health_check_path=HEALTH["ready"],
        certificate_arn=app.certificate_arn,
        hosted_zone_id=app.hosted_zone_id,
        waf_acl_arn=app.waf_acl_arn,
        # like the cluster's and the database's: on in every stack (teardown: docs/teardown.md)
        deletion_protection=True,
        naming=naming,
        kubernetes=kubernetes,
        depends_on=[load_balancers.chart],
    ),
    opts=with_k8s,
)

pulumi.export("region", account.region)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("vpcCidr", network.vpc_cidr)
pulumi.export("availabilityZones", list(network.zones))
pulumi.export("publicSubnetIds", network.public_subnet_ids)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("isolatedSubnetIds", network.isolated_subnet_ids)
pulumi.export("databaseEndpoint", database.endpoint)
pulumi.export("databasePort", database.port)
pulumi.export("databaseName", database.database_name)
pulumi.export("databaseSecurityGroupId", database.security_group_id)
pulumi.export("databaseMasterSecretArn", database.master_secret_arn)
pulumi.export("cachePrimaryEndpoint", cache.primary_endpoint)
pulumi.export("cacheReaderEndpoint", cache.reader_endpoint)
pulumi.export("cachePort", cache.port)
pulumi.export("cacheSecurityGroupId", cache.security_group_id)
pulumi.export("backupsBucket", storage.backups_bucket)
pulumi.export("staticBucket", storage.static_bucket)
pulumi.export("mediaBucket", storage.media_bucket)
pulumi.export("backupsReplicaBucket", storage.replica_bucket)
pulumi.export("clusterName", cluster.name)
pulumi.export("clusterEndpoint", cluster.endpoint)
pulumi.export("clusterOidcProviderArn", cluster.oidc.provider_arn)
pulumi.export("nodeSecurityGroupId", cluster.node_security_group_id)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("imageRepositories", images.repository_urls)
pulumi.export("images", images.refs)
pulumi.export("appNamespace", workloads.namespace)
pulumi.export("appHost", app.host)
pulumi.export("githubPreviewRoleArn", deploy_access.preview_role_arn)
pulumi.export("githubDeployRoleArn", deploy_access.deploy_role_arn)
