"""ExpoScholar infrastructure: load the stack's settings once, compose the components, export.

Components never read configuration themselves: they get settings and each other's outputs.
"""

import pulumi

from components.naming import Naming
from components.network import Network, NetworkArgs
from components.providers import aws_provider
from components.settings import load_settings

settings = load_settings()
naming = Naming.for_stack(settings)
aws = aws_provider("aws", settings, naming)
with_aws = pulumi.ResourceOptions(providers=[aws])

network = Network(
    "network",
    NetworkArgs(
        settings=settings.network,
        naming=naming,
        region=settings.account.region,
        account_id=settings.account.account_id,
        cluster_name=naming.physical("cluster", "eks"),
    ),
    opts=with_aws,
)

pulumi.export("region", settings.account.region)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("vpcCidr", network.vpc_cidr)
pulumi.export("availabilityZones", list(network.zones))
pulumi.export("publicSubnetIds", network.public_subnet_ids)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("isolatedSubnetIds", network.isolated_subnet_ids)
