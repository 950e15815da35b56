"""The edge as the program declares it: its Deployment, Service, autoscaling and Ingress wiring,
the configuration rendered from settings, the lists it is rendered from, and that switching
maintenance mode (or a block list) changes the edge's ConfigMap and rolls the edge's pods and
nothing else."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.app.edge.config import (
    LISTS_DIR,
    AgentLists,
    EdgeConfig,
    EdgeConfigError,
    fill,
    read_list,
    read_referrers,
    render,
)
from components.lib.kube.pods import CHECKSUM_ANNOTATION, checksum
from components.settings import StackSettings
from components.settings.model import EDGE_SIDECARS
from tests import STACKS
from tests.edge_harness import BROWSERS, GOOD_BOTS
from tools.edge.rendered import edge_files
from tools.edge.run import override
from tools.mocks import CapturedResource
from tools.plan import Plan
from tools.preview import REPO_ROOT
from tools.program import run_program
from tools.project import StackConfig
from tools.render import replace_folder

K = "kubernetes:"


def _one(plan: Plan, typ: str, name: str) -> CapturedResource:
    found = [r for r in plan.of_type(typ) if r.inputs.get("metadata", {}).get("name") == name]
    assert len(found) == 1, (typ, name, len(found))
    return found[0]


def _deployment(plan: Plan) -> dict[str, Any]:
    return _one(plan, f"{K}apps/v1:Deployment", "edge").inputs


def test_edge_pods_are_restricted_read_only_probed_and_spread(
    plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack].edge
    spec = _deployment(plan)["spec"]
    assert "replicas" not in spec  # the HPA owns them
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert [c["name"] for c in pod["initContainers"]] == ["nginx-metrics", "log-metrics"]
    assert "-images-web:" in container["image"] and "@sha256:" in container["image"]
    assert (
        container["command"][:1] == ["nginx"]
        and "/usr/share/nginx/edge/nginx.conf" in (container["command"])
    )
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["/usr/share/nginx/edge"]["readOnly"] is True
    assert volumes[mounts["/usr/share/nginx/edge"]["name"]]["configMap"]["name"] == "edge-config"
    assert "emptyDir" in volumes[mounts["/usr/share/nginx/run"]["name"]]
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "http"}
    assert container["resources"]["limits"] == settings.resources.limits()
    zones = [c for c in pod["topologySpreadConstraints"] if "zone" in c["topologyKey"]]
    assert zones and zones[0]["whenUnsatisfiable"] == "DoNotSchedule"
    assert "sleep" in container["lifecycle"]["preStop"]["exec"]["command"][-1]
    assert "kill -QUIT 1" in container["lifecycle"]["preStop"]["exec"]["command"][-1]


def test_the_metrics_sidecars_read_what_nginx_writes_and_serve_prometheus_jobs(plan: Plan) -> None:
    pod = _deployment(plan)["spec"]["template"]["spec"]
    (edge,) = pod["containers"]
    nginx_metrics, log_metrics = pod["initContainers"]
    # native sidecars: started before nginx, stopped after it, never gating its readiness
    for sidecar in (nginx_metrics, log_metrics):
        assert sidecar["restartPolicy"] == "Always"
        assert "readinessProbe" not in sidecar and "startupProbe" not in sidecar
        # one image for both, from the stack's ECR by digest: nothing from Docker Hub at run time
        assert sidecar["image"] == log_metrics["image"]
    assert nginx_metrics["command"] == ["/usr/local/bin/nginx-prometheus-exporter"]
    data = _one(plan, f"{K}core/v1:ConfigMap", "edge-config").inputs["data"]
    # stub_status: the exporter reads the port and path the ConfigMap's status server listens on
    status_port = re.fullmatch(r"listen 127\.0\.0\.1:(\d+);\n", data["status-listen.conf"])
    assert status_port is not None and "location = /stub_status {" in data["status.conf"]
    assert (
        f"--nginx.scrape-uri=http://127.0.0.1:{status_port.group(1)}/stub_status"
        in nginx_metrics["args"]
    )
    # the metrics log: the file logging.conf names under nginx's logs/, the sidecar's env names
    # the same file through the same emptyDir
    logged = re.search(r"^access_log (\S+) edge_metrics buffer=", data["logging.conf"], re.M)
    assert logged is not None and logged.group(1) == "logs/metrics.log"
    by_path = {m["mountPath"]: m["name"] for m in edge["volumeMounts"]}
    shared = by_path["/usr/share/nginx/logs"]
    (sidecar_mount,) = log_metrics["volumeMounts"]
    assert sidecar_mount["name"] == shared and not sidecar_mount.get("readOnly")
    env = {e["name"]: e["value"] for e in log_metrics["env"]}
    assert env["EDGE_METRICS_LOG"] == f"{sidecar_mount['mountPath']}/metrics.log"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[shared]["emptyDir"]["sizeLimit"] == "64Mi"
    assert int(env["EDGE_METRICS_LOG_MAX_BYTES"]) * 4 <= 64 * 1024 * 1024
    assert re.search(r"-images-edgemetrics[:@].*@?sha256:[0-9a-f]{64}$", log_metrics["image"])
    # the ports Prometheus's edge jobs select by name (components.monitoring.prometheus)
    ports = {c["name"]: c["ports"] for c in (nginx_metrics, log_metrics)}
    assert ports["nginx-metrics"] == [
        {"name": "nginx-metrics", "containerPort": 9113, "protocol": "TCP"}
    ]
    assert ports["log-metrics"] == [
        {"name": "log-metrics", "containerPort": 3903, "protocol": "TCP"}
    ]
    # the namespace quota check counts exactly these limits per edge pod
    cpu = sum(
        int(c["resources"]["limits"]["cpu"].removesuffix("m")) for c in (nginx_metrics, log_metrics)
    )
    memory = sum(
        int(c["resources"]["limits"]["memory"].removesuffix("Mi"))
        for c in (nginx_metrics, log_metrics)
    )
    assert (cpu, memory * 2**20) == (EDGE_SIDECARS.cpu.base, EDGE_SIDECARS.memory.base)
    for sidecar in (nginx_metrics, log_metrics):
        security = sidecar["securityContext"]
        assert security["readOnlyRootFilesystem"] is True and security["runAsNonRoot"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert sidecar["resources"]["limits"] and sidecar["resources"]["requests"]
        assert "tcpSocket" in sidecar["livenessProbe"]


def test_prometheus_scrapes_the_edge_sidecars_by_their_port_names(plan: Plan) -> None:
    prometheus = _one(plan, f"{K}core/v1:ConfigMap", "prometheus-config").inputs["data"]
    config = yaml.safe_load(prometheus["prometheus.yml"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    template = _deployment(plan)["spec"]["template"]
    app = template["metadata"]["labels"]["app.kubernetes.io/name"]
    targets = {
        f"{app};{port['name']}"
        for kind in ("containers", "initContainers")  # pod discovery lists both
        for container in template["spec"].get(kind, [])
        for port in container.get("ports", [])
    }
    for job in ("edge-nginx", "edge-logs"):
        kept = [r["regex"] for r in jobs[job]["relabel_configs"] if r.get("action") == "keep"]
        assert [t for t in targets if re.fullmatch(kept[0], t)], (job, kept, targets)


def test_the_checksum_on_the_pods_is_that_of_the_configuration(plan: Plan) -> None:
    data = _one(plan, f"{K}core/v1:ConfigMap", "edge-config").inputs["data"]
    annotations = _deployment(plan)["spec"]["template"]["metadata"]["annotations"]
    assert annotations[CHECKSUM_ANNOTATION] == checksum(data)


def test_edge_scaling_objects_target_the_edge(
    plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack].edge
    hpa = _one(plan, f"{K}autoscaling/v2:HorizontalPodAutoscaler", "edge").inputs["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "edge"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (
        settings.min_replicas,
        settings.max_replicas,
    )
    # nginx's own CPU: the metrics sidecars' usage (per request, on small requests) would skew
    # a pod-level utilization
    assert hpa["metrics"] == [
        {
            "type": "ContainerResource",
            "containerResource": {
                "name": "cpu",
                "container": "edge",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ]
    pdb = _one(plan, f"{K}policy/v1:PodDisruptionBudget", "edge").inputs["spec"]
    assert pdb["maxUnavailable"] == 1
    vpas = [
        r for r in plan.resources
        if r.inputs.get("kind") == "VerticalPodAutoscaler"
        and r.inputs["spec"]["targetRef"]["name"] == "edge"
    ]  # fmt: skip
    assert len(vpas) == 1


def test_the_ingress_sends_everything_to_the_edge(plan: Plan) -> None:
    service = _one(plan, f"{K}core/v1:Service", "edge").inputs
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (8080, "http")
    assert service["spec"]["selector"]["app.kubernetes.io/name"] == "edge"
    (ingress,) = plan.of_type(f"{K}networking.k8s.io/v1:Ingress")
    (rule,) = ingress.inputs["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "edge", "port": {"number": 8080}}
    annotations = ingress.inputs["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/healthz"


def test_configuration_is_rendered_from_the_stacks_settings(
    plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack]
    edge = settings.edge
    files = edge_files(plan)
    assert sum(len(v.encode()) for v in files.values()) < 1024 * 1024  # a ConfigMap's limit
    api = edge.per_pod(edge.api)
    auth = edge.per_pod(edge.auth)
    limits, server = files["limits.conf"], files["server.conf"]
    assert f"zone=edge_api:10m rate={api.per_minute}r/m;" in limits
    assert f"zone=edge_auth:10m rate={auth.per_minute}r/m;" in limits
    assert f"limit_req zone=edge_api burst={api.burst} nodelay;" in server
    assert f"client_max_body_size {edge.max_body_mb}m;" in server
    assert re.findall(r"set_real_ip_from (\S+);", files["trusted-proxies.conf"]) == [
        settings.network.vpc_cidr
    ]
    assert "server server.exposcholar.svc.cluster.local:8000 " in files["upstream.conf"]
    assert files["listen.conf"].strip() == "listen 8080;"
    for cidr in edge.allowed_cidrs:
        assert f"    {cidr} allowed;" in files["clients.conf"]
    assert "    default 0;" in files["maintenance.conf"]  # off in both stacks
    assert "{{" not in "".join(files.values())


def test_per_pod_rates_divide_the_stack_rate_by_the_replica_floor(
    stack_settings: dict[str, StackSettings],
) -> None:
    edge = stack_settings["prod"].edge
    assert edge.min_replicas == 3
    # 20 r/s = 1200 r/min for the stack, 400 per pod; bursts and auth rounded up
    assert edge.per_pod(edge.api).per_minute == 400
    assert edge.per_pod(edge.auth).per_minute == 4


# --- the plan diff of a switch ----------------------------------------------------------------


def _plan(config: StackConfig, *sets: str) -> Plan:
    return run_program(REPO_ROOT, override(config, sets))


def _inputs_by_urn(plan: Plan) -> dict[str, str]:
    return {r.urn: json.dumps(r.inputs, sort_keys=True) for r in plan.resources}


@pytest.mark.parametrize(
    "sets",
    [
        ("maintenanceEnabled=true", 'maintenanceAllowlist=["198.51.100.0/24"]'),
        ('edgeBlockedCidrs=["192.0.2.0/24"]',),
    ],
    ids=["maintenance", "block-list"],
)
def test_a_switch_changes_the_edge_configuration_and_rolls_only_the_edge(
    stack_configs: dict[str, StackConfig], plans: dict[str, Plan], sets: tuple[str, ...]
) -> None:
    before = plans["staging"]
    after = _plan(stack_configs["staging"], *sets)
    old, new = _inputs_by_urn(before), _inputs_by_urn(after)
    assert old.keys() == new.keys()
    changed = {urn for urn in old if old[urn] != new[urn]}
    config_map = _one(before, f"{K}core/v1:ConfigMap", "edge-config").urn
    deployment = _one(before, f"{K}apps/v1:Deployment", "edge").urn
    assert changed == {config_map, deployment}
    # in the Deployment, only the pod template's checksum differs
    old_deployment = json.loads(old[deployment])
    new_deployment = json.loads(new[deployment])
    old_annotations = old_deployment["spec"]["template"]["metadata"].pop("annotations")
    new_annotations = new_deployment["spec"]["template"]["metadata"].pop("annotations")
    assert old_deployment == new_deployment
    assert old_annotations[CHECKSUM_ANNOTATION] != new_annotations[CHECKSUM_ANNOTATION]
    # and in the configuration, only the file of the switch
    old_files, new_files = edge_files(before), edge_files(after)
    differing = {name for name in old_files if old_files[name] != new_files[name]}
    # (maintenance: its allowlist and gate, and the decision the logs take, "maintenance" for
    # its answers)
    maintenance = {"maintenance.conf", "gate.conf", "logging.conf"}
    expected = maintenance if "maintenance" in sets[0] else {"clients.conf"}
    assert differing == expected


# --- the lists --------------------------------------------------------------------------------


def _bounded(entries: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(entry) for entry in entries)
    return re.compile(rf"(?<![a-z0-9_])(?:{alternatives})(?![a-z0-9_])", re.IGNORECASE)


def test_lists_are_large_sourced_and_licensed() -> None:
    agents = AgentLists.load()
    assert len(agents.block) >= 500
    assert len(agents.limit) >= 10 and len(agents.allow) >= 10
    assert len(read_referrers()) >= 1000
    for path in sorted(LISTS_DIR.glob("*.txt")):
        header = "\n".join(
            line for line in path.read_text().splitlines() if line.startswith("#")
        ).lower()
        assert "source:" in header and "licen" in header, path.name


def test_no_browser_is_blocked_or_limited_and_no_good_bot_is_blocked() -> None:
    agents = AgentLists.load()
    blocked = _bounded(agents.block + agents.limit)
    for browser in BROWSERS:
        assert not blocked.search(browser), (browser, blocked.search(browser))
    good = _bounded(agents.block)
    for bot in GOOD_BOTS:
        assert not good.search(bot), bot


def test_a_malformed_list_is_refused_naming_the_file(tmp_path: Path) -> None:
    twice = tmp_path / "twice.txt"
    twice.write_text("# x\nTitan\ntitan\n")
    with pytest.raises(EdgeConfigError, match=r"twice\.txt:3: 'titan' is listed twice"):
        read_list(twice)
    for name in ("good-user-agents.txt", "bad-user-agents.txt", "limited-user-agents.txt"):
        (tmp_path / name).write_text("Zeus\n")
    with pytest.raises(EdgeConfigError, match="also in"):
        AgentLists.load(tmp_path)
    (tmp_path / "good-user-agents.txt").write_text('Bad"Quote\n')
    with pytest.raises(EdgeConfigError, match="without quotes"):
        AgentLists.load(tmp_path)
    (tmp_path / "bad-referrers.txt").write_text("Not A Domain\n")
    with pytest.raises(EdgeConfigError, match="not a lower-case host name"):
        read_referrers(tmp_path / "bad-referrers.txt")


def test_the_allowlist_is_never_out_specified_by_the_block_list(
    stack_settings: dict[str, StackSettings],
) -> None:
    edge = replace(
        stack_settings["staging"].edge,
        allowed_cidrs=("10.1.0.0/16", "192.0.2.7/32"),
        blocked_cidrs=("10.1.2.0/24", "192.0.2.0/24", "198.51.100.0/24"),
    )
    files = render(
        EdgeConfig(edge, "server:8000", ("10.0.0.0/8",), AgentLists.load(), read_referrers())
    )
    lines = [line.strip() for line in files["clients.conf"].splitlines() if line.startswith("    ")]
    assert lines == [
        'default "";',
        "10.1.0.0/16 allowed;",
        "192.0.2.7/32 allowed;",
        # 10.1.2.0/24 is inside an allowed network: left out; 192.0.2.0/24 holds 192.0.2.7,
        # which is more specific, so it stays
        "192.0.2.0/24 blocked;",
        "198.51.100.0/24 blocked;",
    ]


def test_templates_are_filled_strictly() -> None:
    assert fill("x.conf", "a {{one}} b", {"one": "1"}) == "a 1 b"
    with pytest.raises(EdgeConfigError, match=r"without a value \['two'\]"):
        fill("x.conf", "{{one}} {{two}}", {"one": "1"})
    with pytest.raises(EdgeConfigError, match=r"without a placeholder \['three'\]"):
        fill("x.conf", "{{one}}", {"one": "1", "three": "3"})


@pytest.mark.parametrize("stack", STACKS)
def test_preview_writes_the_edge_files(stack: str, plans: dict[str, Plan]) -> None:
    files = edge_files(plans[stack])
    assert {"nginx.conf", "maintenance.html", "user-agents.conf", "server.conf"} <= set(files)


# --- the pods' nginx (scripts/check-edge-image.sh, run by the pull request workflow) --------

CHECK = REPO_ROOT / "scripts" / "check-edge-image.sh"
BASH = shutil.which("bash") or "/bin/bash"


def _fake_docker(tmp_path: Path, exit_code: int) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(
        f"#!/bin/sh\nprintf '%s\\n' \"$@\" >> {tmp_path}/docker.args\n"
        f"echo --- >> {tmp_path}/docker.args\nexit {exit_code}\n"
    )
    docker.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_the_pods_nginx_checks_every_rendered_stack_as_the_pod_runs_it(
    tmp_path: Path, plans: dict[str, Plan]
) -> None:
    build = tmp_path / "build"
    for stack, plan in plans.items():
        replace_folder(edge_files(plan), build / stack / "edge")
    env = _fake_docker(tmp_path, 0)
    result = subprocess.run(
        [BASH, str(CHECK), str(build)], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    runs = [r.strip().splitlines() for r in (tmp_path / "docker.args").read_text().split("---")]
    runs = [r for r in runs if r]
    assert len(runs) == len(plans)
    dockerfile = (REPO_ROOT / "components/aws/images/web/Dockerfile").read_text()
    (image,) = re.findall(r"^FROM (\S+) AS runtime$", dockerfile, re.MULTILINE)
    for args, stack in zip(runs, sorted(plans), strict=True):
        assert args[:3] == ["run", "--rm", "--read-only"]
        assert args[args.index("--user") + 1] == "10001:10001"
        assert (
            args[args.index("--volume") + 1] == f"{build / stack / 'edge'}:/usr/share/nginx/edge:ro"
        )
        assert args[args.index("--entrypoint") + 1 :][:2] == ["nginx", image]
        assert "-t" in args and "/usr/share/nginx/edge/nginx.conf" in args
        # every folder the configuration writes in (nginx -t opens the logs) is writable there
        files = edge_files(plans[stack])
        written = {
            path.split("/", 1)[0]
            for text in files.values()
            for path in re.findall(
                r"^\s*(?:pid|access_log|\w+_temp_path)\s+([a-z]+/[^\s;]*)", text, re.M
            )
        }
        assert written == {"run", "logs"}
        tmpfs = {args[i + 1].split(":", 1)[0] for i, a in enumerate(args) if a == "--tmpfs"}
        assert tmpfs == {f"/usr/share/nginx/{folder}" for folder in written}


def test_the_pods_nginx_check_fails_when_nginx_refuses_or_nothing_was_rendered(
    tmp_path: Path, plans: dict[str, Plan]
) -> None:
    env = _fake_docker(tmp_path, 1)
    empty = subprocess.run([BASH, str(CHECK), str(tmp_path / "nothing")], env=env,
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert empty.returncode == 2 and "run the offline preview first" in empty.stderr
    replace_folder(edge_files(plans["staging"]), tmp_path / "build" / "staging" / "edge")
    refused = subprocess.run([BASH, str(CHECK), str(tmp_path / "build")], env=env,
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert refused.returncode == 1 and "staging: the pods' nginx refuses" in refused.stderr


def test_the_edge_listens_on_plain_http_only(plans: dict[str, Plan]) -> None:
    """TLS ends at the load balancer: the edge's X-Forwarded-Proto for a request the load
    balancer did not vouch for is the constant ``http`` (responses.conf), true only while every
    listener is plain HTTP."""
    for stack, plan in plans.items():
        files = edge_files(plan)
        listens = [line for text in files.values() for line in text.splitlines()
                   if line.strip().startswith("listen ")]  # fmt: skip
        assert listens, stack
        plain = re.compile(r"\s*listen (?:[0-9.]+:|\[[0-9a-fA-F:]+\]:)?\d+;")
        assert all(plain.fullmatch(line) for line in listens), listens


def test_the_decisions_exact_keys_have_the_shape_of_its_source() -> None:
    """The common decisions are exact keys of the decision map (a hash lookup) so that no
    request pays for its patterns: a key with the wrong number of fields never matches, and
    every browser request would fall through all the patterns to the default."""
    text = (REPO_ROOT / "components" / "app" / "edge" / "nginx" / "decision.conf").read_text()
    source = re.search(r'^map "([^"]+)" \$edge_decision \{(.*?)^\}', text, re.M | re.S)
    assert source, "decision.conf has the decision map"
    fields = source.group(1).count("|") + 1
    exact = re.findall(r'^\s*"([^~"][^"]*)"\s+[\w-]+;', source.group(2), re.M)
    # nothing singles it out: every list's field empty, the referrer's 0 (the last field)
    assert "|" * (fields - 1) + "0" in exact, "a request nothing singles out is an exact key"
    assert exact and all(key.count("|") + 1 == fields for key in exact), exact
