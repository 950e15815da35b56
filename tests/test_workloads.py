"""The application on the cluster (components/app/workloads.py), for both stacks: namespace, quota,
configuration, database credentials synced from Secrets Manager, the server, its migrations,
Service and autoscaling."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.app.pod_spec import CREDENTIALS_DIR, HEALTH, PRE_STOP_SECONDS, SECRETS_DIR
from components.settings import StackSettings
from tests.conftest import component_plan, key_arn, only
from tools.mocks import MASK, CapturedResource
from tools.plan import Plan
from tools.preview import REPO_ROOT
from tools.program import run_program
from tools.project import StackConfig

WORKLOADS = "exposcholar:app:Workloads"
NS = "exposcholar"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
ROLE = "aws:iam/role:Role"


@pytest.fixture
def app(plan: Plan) -> Plan:
    return component_plan(plan, WORKLOADS)


def kind(plan: Plan, typ: str, name: str) -> CapturedResource:
    (found,) = [r for r in plan.of_type(typ) if r.inputs["metadata"]["name"] == name]
    return found


def server(app: Plan) -> dict[str, Any]:
    return only(app, DEPLOYMENT).inputs


def pod(spec: dict[str, Any]) -> dict[str, Any]:
    return dict(spec["spec"]["template"]["spec"])


def inline_policy(plan: Plan, role: CapturedResource) -> dict[str, Any]:
    (policy,) = [
        r for r in plan.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.startswith(role.name)
    ]
    return dict(json.loads(policy.inputs["policy"]))


def role_of(app: Plan, account: str) -> CapturedResource:
    (role,) = [r for r in app.of_type(ROLE) if r.name == f"app-{account}-role"]
    return role


def test_namespace_enforces_restricted_pod_security(
    app: Plan, plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    labels = kind(app, "kubernetes:core/v1:Namespace", NS).inputs["metadata"]["labels"]
    version = f"v{stack_settings[plan.stack].cluster.version}"
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == version
    # every object of the component lives in it
    for resource in app.resources:
        namespaced = resource.type != "kubernetes:core/v1:Namespace"
        if resource.type.startswith("kubernetes:") and resource.custom and namespaced:
            assert resource.inputs["metadata"]["namespace"] == NS, resource.name


def test_quota_and_limits_come_from_settings(
    app: Plan, plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack].workloads
    hard = only(app, "kubernetes:core/v1:ResourceQuota").inputs["spec"]["hard"]
    assert hard == {
        "requests.cpu": settings.quota.cpu.text,
        "limits.cpu": settings.quota.cpu.text,
        "requests.memory": settings.quota.memory.text,
        "limits.memory": settings.quota.memory.text,
        "pods": str(settings.quota.pods),
        # traffic enters only through the Ingress
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }
    (limit,) = only(app, "kubernetes:core/v1:LimitRange").inputs["spec"]["limits"]
    assert limit["type"] == "Container"
    assert limit["defaultRequest"] == settings.server.requests()
    assert limit["default"] == settings.server.limits()


def test_config_map_tells_django_where_everything_is(
    app: Plan, plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack]
    data = only(app, "kubernetes:core/v1:ConfigMap").inputs["data"]
    database = only(plan, "aws:rds/instance:Instance").outputs
    cache = only(plan, "aws:elasticache/replicationGroup:ReplicationGroup").outputs
    assert data["DATABASE_HOST"] == database["address"]
    assert data["DATABASE_PORT"] == "5432"
    assert data["DATABASE_NAME"] == settings.database.database_name
    assert data["DATABASE_SSLMODE"] == "verify-full"
    assert data["REDIS_URL"] == f"rediss://{cache['primaryEndpointAddress']}:6379/0"
    assert data["AWS_STORAGE_BUCKET_NAME"] == plan.outputs["staticBucket"]
    assert data["AWS_MEDIA_BUCKET_NAME"] == plan.outputs["mediaBucket"]
    assert data["DJANGO_ALLOWED_HOSTS"] == settings.workloads.host
    assert data["DJANGO_CSRF_TRUSTED_ORIGINS"] == f"https://{settings.workloads.host}"
    assert data["DJANGO_LOG_LEVEL"] == settings.workloads.log_level.value
    assert data["DATABASE_CREDENTIALS_DIR"] == CREDENTIALS_DIR
    assert data["DJANGO_SECRETS_DIR"] == SECRETS_DIR
    assert not any(key.endswith(("PASSWORD", "SECRET_KEY", "TOKEN")) for key in data)


def test_secret_holds_the_secret_settings_encrypted(app: Plan) -> None:
    secret = only(app, "kubernetes:core/v1:Secret").inputs
    assert secret["stringData"] == {"DJANGO_SECRET_KEY": MASK, "REDIS_AUTH_TOKEN": MASK}
    assert secret["type"] == "Opaque"


def test_database_credentials_follow_rotation(app: Plan, plan: Plan) -> None:
    master_secret = plan.outputs["databaseMasterSecretArn"]
    store = only(app, "kubernetes:external-secrets.io/v1:SecretStore").inputs
    aws = store["spec"]["provider"]["aws"]
    assert aws["service"] == "SecretsManager"
    assert aws["auth"] == {"jwt": {"serviceAccountRef": {"name": "database-credentials"}}}
    external = only(app, "kubernetes:external-secrets.io/v1:ExternalSecret").inputs
    spec = external["spec"]
    assert spec["refreshInterval"] == "15m"
    assert spec["secretStoreRef"] == {"kind": "SecretStore", "name": "aws-secrets-manager"}
    assert spec["target"]["name"] == "database-credentials"
    assert {d["secretKey"]: d["remoteRef"] for d in spec["data"]} == {
        "username": {"key": master_secret, "property": "username"},
        "password": {"key": master_secret, "property": "password"},
    }
    assert external["metadata"]["annotations"] == {"pulumi.com/waitFor": "condition=Ready"}
    # mounted as files the kubelet refreshes in place, never as environment variables
    spec_of_pod = pod(server(app))
    (container,) = spec_of_pod["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec_of_pod["volumes"]}
    assert volumes["database"]["secret"]["secretName"] == "database-credentials"
    assert mounts["database"] == {
        "name": "database",
        "mountPath": CREDENTIALS_DIR,
        "readOnly": True,
    }


def test_secrets_reach_the_app_as_files_only(app: Plan) -> None:
    for workload in (server(app), only(app, JOB).inputs):
        spec_of_pod = pod(workload)
        (container,) = spec_of_pod["containers"]
        assert all("secretRef" not in source for source in container["envFrom"])
        assert all("valueFrom" not in json.dumps(env) for env in container.get("env", []))
        volumes = {v["name"]: v for v in spec_of_pod["volumes"]}
        assert volumes["secrets"]["secret"]["secretName"] == "server-secrets"
        assert volumes["secrets"]["secret"]["defaultMode"] == 0o440
        assert {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True} in container[
            "volumeMounts"
        ]


def test_credentials_reader_may_read_only_the_master_secret(app: Plan, plan: Plan) -> None:
    role = role_of(app, "database-credentials")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    (condition,) = [s["Condition"]["StringEquals"] for s in trust["Statement"]]
    assert "system:serviceaccount:exposcholar:database-credentials" in condition.values()
    statements = inline_policy(app, role)["Statement"]
    resources = {r for s in statements for r in s["Resource"]}
    assert resources == {plan.outputs["databaseMasterSecretArn"], key_arn(plan, "data")}
    (decrypt,) = [s for s in statements if s["Action"] == ["kms:Decrypt"]]
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"].startswith("secretsmanager.")
    account = kind(app, "kubernetes:core/v1:ServiceAccount", "database-credentials").inputs
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role.outputs["arn"]}


def test_server_runs_restricted(app: Plan) -> None:
    spec = pod(server(app))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True
    # the read-only root gets a capped emptyDir for /tmp
    (tmp,) = [v for v in spec["volumes"] if v["name"] == "tmp"]
    assert tmp["emptyDir"] == {"sizeLimit": "64Mi"}
    tmp_mount = {"name": "tmp", "mountPath": "/tmp"}  # noqa: S108
    assert tmp_mount in container["volumeMounts"]


def test_server_sizing_probes_and_draining(
    app: Plan, plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack].workloads
    deployment = server(app)
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    spec = pod(deployment)
    (container,) = spec["containers"]
    assert container["image"] == plan.outputs["images"]["server"]
    assert container["resources"] == {
        "requests": settings.server.requests(),
        "limits": settings.server.limits(),
    }
    paths = {
        probe: container[f"{probe}Probe"]["httpGet"]["path"]
        for probe in ("startup", "readiness", "liveness")
    }
    assert paths == {"startup": HEALTH["startup"], "readiness": HEALTH["ready"],
                     "liveness": HEALTH["live"]}  # fmt: skip
    assert len(set(paths.values())) == 3
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": PRE_STOP_SECONDS}}
    assert spec["terminationGracePeriodSeconds"] > PRE_STOP_SECONDS + 25
    assert spec["nodeSelector"] == {"exposcholar.io/pool": "app"}
    zone = spec["topologySpreadConstraints"][0]
    assert zone["topologyKey"] == "topology.kubernetes.io/zone"
    assert zone["whenUnsatisfiable"] == "DoNotSchedule"
    assert zone["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_server_role_reaches_only_static_and_media(app: Plan, plan: Plan) -> None:
    role = role_of(app, "server")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    (condition,) = [s["Condition"]["StringEquals"] for s in trust["Statement"]]
    assert "system:serviceaccount:exposcholar:server" in condition.values()
    buckets = {
        b.outputs["arn"]
        for b in plan.of_type("aws:s3/bucket:Bucket")
        if b.outputs["bucket"] in (plan.outputs["staticBucket"], plan.outputs["mediaBucket"])
    }
    assert len(buckets) == 2
    resources = {r for s in inline_policy(app, role)["Statement"] for r in s["Resource"]}
    assert resources == {*buckets, *(f"{b}/*" for b in buckets), key_arn(plan, "storage")}
    account = kind(app, "kubernetes:core/v1:ServiceAccount", "server").inputs
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role.outputs["arn"]}
    assert pod(server(app))["serviceAccountName"] == "server"


def test_migrations_run_before_each_release(app: Plan) -> None:
    job = only(app, JOB)
    spec = job.inputs["spec"]
    assert spec["backoffLimit"] == 3
    assert spec["activeDeadlineSeconds"] == 900
    job_pod = spec["template"]["spec"]
    assert job_pod["restartPolicy"] == "Never"
    (container,) = job_pod["containers"]
    assert container["args"] == ["python", "manage.py", "migrate", "--noinput"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "readinessProbe" not in container
    deployment = only(app, DEPLOYMENT)
    assert job.urn in deployment.dependencies, "the server waits for its release's migrations"
    external = only(app, "kubernetes:external-secrets.io/v1:ExternalSecret")
    assert external.urn in job.dependencies, "migrations need the synced credentials"
    # job and pods are named by the same release checksum
    digest = deployment.inputs["spec"]["template"]["metadata"]["annotations"][
        "exposcholar.io/config-checksum"
    ]
    assert job.inputs["metadata"]["name"] == f"server-migrate-{digest[:10]}"


def test_a_config_change_rolls_the_pods_and_reruns_migrations(
    stack_configs: dict[str, StackConfig], plans: dict[str, Plan]
) -> None:
    base = stack_configs["staging"]
    changed = StackConfig(
        base.stack,
        {**base.values, "exposcholar:appLogLevel": "DEBUG"},
        base.secret_keys,
        base.placeholders,
    )
    before, after = (
        component_plan(p, WORKLOADS) for p in (plans["staging"], run_program(REPO_ROOT, changed))
    )

    def release(app: Plan) -> tuple[str, str]:
        annotations = server(app)["spec"]["template"]["metadata"]["annotations"]
        return annotations["exposcholar.io/config-checksum"], only(app, JOB).inputs["metadata"][
            "name"
        ]

    assert release(before)[0] != release(after)[0]
    assert release(before)[1] != release(after)[1]


def test_service_selects_the_server_pods(app: Plan) -> None:
    service = only(app, "kubernetes:core/v1:Service").inputs["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"},
        {"name": "metrics", "port": 8001, "targetPort": "metrics", "protocol": "TCP"},
    ]
    labels = server(app)["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()


def test_hpa_scales_on_cpu_and_memory(
    app: Plan, plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack].workloads
    hpa = only(app, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler").inputs["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "server",
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (
        settings.min_replicas,
        settings.max_replicas,
    )
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    down = hpa["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] == settings.scale_down_stabilization_seconds


def test_pdb_and_vpa(app: Plan) -> None:
    pdb = only(app, "kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"]["matchLabels"] == server(app)["spec"]["selector"]["matchLabels"]
    vpa = only(app, "kubernetes:autoscaling.k8s.io/v1:VerticalPodAutoscaler").inputs["spec"]
    assert vpa["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "server"}
    # the HPA scales the server on CPU and memory: the VPA only recommends
    assert vpa["updatePolicy"] == {"updateMode": "Off"}


def test_pods_wait_for_nodes_and_operators(app: Plan, plan: Plan) -> None:
    node_groups = {r.urn for r in plan.of_type("aws:eks/nodeGroup:NodeGroup")}
    namespace = kind(app, "kubernetes:core/v1:Namespace", NS)
    assert node_groups <= set(namespace.dependencies)
    charts = {
        r.name: r.urn
        for r in plan.resources
        if r.type in ("kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Release")
    }
    store = only(app, "kubernetes:external-secrets.io/v1:SecretStore")
    assert charts["external-secrets-chart"] in store.dependencies
    vpa = only(app, "kubernetes:autoscaling.k8s.io/v1:VerticalPodAutoscaler")
    assert charts["vpa-release"] in vpa.dependencies


def test_every_multi_replica_deployment_has_a_disruption_budget(plan: Plan) -> None:
    """Explicit Deployments (charts set their own budgets in their values)."""
    hpas = {
        (h.inputs["metadata"]["namespace"], h.inputs["spec"]["scaleTargetRef"]["name"]): h
        for h in plan.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    }
    budgets = plan.of_type("kubernetes:policy/v1:PodDisruptionBudget")
    deployments = plan.of_type(DEPLOYMENT)
    assert len(deployments) >= 2
    for deployment in deployments:
        metadata, spec = deployment.inputs["metadata"], deployment.inputs["spec"]
        hpa = hpas.get((metadata["namespace"], metadata["name"]))
        most = hpa.inputs["spec"]["maxReplicas"] if hpa else spec.get("replicas", 1)
        labels = spec["template"]["metadata"]["labels"].items()
        covering = [
            b
            for b in budgets
            if b.inputs["metadata"]["namespace"] == metadata["namespace"]
            and b.inputs["spec"]["selector"]["matchLabels"].items() <= labels
        ]
        assert bool(covering) == (most > 1), metadata["name"]


def test_one_service_account_per_workload(app: Plan) -> None:
    accounts = {
        a.inputs["metadata"]["name"]: a.inputs
        for a in app.of_type("kubernetes:core/v1:ServiceAccount")
    }
    assert set(accounts) == {"server", "migrate", "database-credentials"}
    # none of the app's workloads calls the Kubernetes API
    assert all(a["automountServiceAccountToken"] is False for a in accounts.values())
    assert "annotations" not in accounts["migrate"]["metadata"], "migrations need no AWS role"
    job_pod = pod(only(app, JOB).inputs)
    assert job_pod["serviceAccountName"] == "migrate"
    assert job_pod["automountServiceAccountToken"] is False
