"""The deploy path as a user relies on it, checked offline: the GitHub workflows
(.github/workflows), the production environment kept as code (.github/environments) with the
script that applies it, and the pull-request comment builder (tools/pr_comment/).

The workflows cannot run here, so these tests read them as data: actionlint (with shellcheck on
every ``run:`` script) for what GitHub would refuse, then one test per promise: pull requests
run the README's test command and preview every stack of ``tools.stacks`` both offline and for
real with the policy pack, in one comment; roles are assumed only through OIDC and only where
needed; production deploys wait for staging and for an approval; deploys of one stack never
overlap; every action is pinned. Commands in ``run:`` scripts are compared after expanding the
step's environment variables, so ``"$POLICY_CONFIG"`` counts as ``${{ matrix.policyConfig }}``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import stacks
from tools.analyzer.report import PolicyDiagnostic
from tools.pr_comment import cli
from tools.pr_comment.body import GITHUB_COMMENT_LIMIT, MARKER, render
from tools.pr_comment.comments import find_comment, parse_pages
from tools.pr_comment.results import PRODUCTION_ROLE, PolicySummary, StackResult

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
PREVIEW = "preview.yml"
DEPLOY = "deploy.yml"
ENVIRONMENT_FILE = REPO / ".github" / "environments" / "production.json"
ENVIRONMENT_SCRIPT = REPO / "scripts" / "github-environments.sh"

Job = dict[str, Any]
Step = dict[str, Any]

_SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@(?P<ref>[0-9a-f]{40})$")
_SEMVER_PIN = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@v\d+\.\d+\.\d+$")
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)\}|(?P<plain>\w+))")
_OPERATORS = {"|", "||", "&&", ";", "&"}
_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")


# --- reading workflows ----------------------------------------------------------------------


def load_workflow(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(data, dict), name
    if True in data:  # PyYAML (YAML 1.1) reads the key `on` as the boolean True
        data["on"] = data.pop(True)
    return data


@pytest.fixture(scope="module")
def preview() -> dict[str, Any]:
    return load_workflow(PREVIEW)


@pytest.fixture(scope="module")
def deploy() -> dict[str, Any]:
    return load_workflow(DEPLOY)


def all_jobs() -> list[tuple[str, str, Job]]:
    found = [
        (name, job_id, job)
        for name in (PREVIEW, DEPLOY)
        for job_id, job in load_workflow(name)["jobs"].items()
    ]
    # the jobs every test over all of them relies on: none of those tests passes on no jobs
    ids = {(name, job_id) for name, job_id, _ in found}
    assert {(PREVIEW, "preview"), (PREVIEW, "comment"), (DEPLOY, "production")} <= ids, ids
    return found


def uses(step: Step, action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def commands(script: str) -> list[list[str]]:
    """The simple commands of a bash script: continuation lines joined, split at pipes and
    lists, redirections dropped (enough for the straight-line scripts of the workflows)."""
    found: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        for substitution in _SUBSTITUTION.findall(line):  # $(command) runs a command too
            found.extend(commands(substitution))
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        tokens = list(lexer)
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if token in _OPERATORS:
                found.append(current)
                current = []
            elif set(token) <= set("<>&") and token:  # a redirection: drop it and its target
                if current and current[-1].isdigit():
                    current.pop()
                index += 1
            else:
                current.append(token)
            index += 1
        found.append(current)
    return [command for command in found if command]


def expand(token: str, env: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match["braced"] or match["plain"]
        return env.get(name, match[0])

    return _VARIABLE.sub(value, token)


def step_commands(workflow: dict[str, Any], job: Job, step: Step) -> list[list[str]]:
    env = {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}
    env = {str(k): str(v) for k, v in env.items()}
    return [[expand(t, env) for t in command] for command in commands(str(step.get("run", "")))]


def job_commands(workflow: dict[str, Any], job: Job) -> list[tuple[int, list[str]]]:
    """(step index, command) of every ``run:`` command of the job."""
    return [
        (index, command)
        for index, step in enumerate(job["steps"])
        for command in step_commands(workflow, job, step)
    ]


def find(workflow: dict[str, Any], job: Job, *prefix: str) -> list[tuple[int, list[str]]]:
    return [(i, c) for i, c in job_commands(workflow, job) if tuple(c[: len(prefix)]) == prefix]


def option(command: list[str], flag: str) -> list[str]:
    """Every value of ``flag`` (``--flag value`` or ``--flag=value``) in the command."""
    values = [b for a, b in itertools.pairwise(command) if a == flag]
    return values + [t.split("=", 1)[1] for t in command if t.startswith(flag + "=")]


def jobs_running(workflow: dict[str, Any], *prefix: str) -> dict[str, Job]:
    return {job_id: job for job_id, job in workflow["jobs"].items() if find(workflow, job, *prefix)}


def needs(job: Job) -> list[str]:
    value = job.get("needs", [])
    return [value] if isinstance(value, str) else list(value)


def matrix_source(job: Job) -> tuple[str, str]:
    """(needed job, output) that ``strategy.matrix.include`` is read from."""
    include = str(job["strategy"]["matrix"]["include"])
    match = re.fullmatch(r"\$\{\{\s*fromJSON\(needs\.([\w-]+)\.outputs\.([\w-]+)\)\s*\}\}", include)
    assert match, f"matrix not from a needed job's output: {include}"
    return match[1], match[2]


def stack_listing(workflow: dict[str, Any], job: Job) -> list[str]:
    """The ``python -m tools.stacks ...`` command whose output is the job's matrix."""
    source_job_id, output = matrix_source(job)
    assert source_job_id in needs(job)
    source = workflow["jobs"][source_job_id]
    expression = str(source["outputs"][output])
    match = re.fullmatch(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}", expression)
    assert match, expression
    step = next(s for s in source["steps"] if s.get("id") == match[1])
    listings = [
        c
        for c in step_commands(workflow, source, step)
        if c[:3] == ["python", "-m", "tools.stacks"]
    ]
    assert len(listings) == 1, listings
    return listings[0]


def readme_quick_start() -> list[tuple[str, str]]:
    """(command, comment) of each line of the README's quick-start code block."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```\w*\n(.*?)```", section, re.DOTALL)
    assert block, "README: no code block under Quick start"
    lines = [line.partition("#") for line in block[1].splitlines() if line.strip()]
    return [(command.strip(), comment.strip()) for command, _, comment in lines]


def readme_command(word: str) -> list[str]:
    """The quick-start command whose comment mentions ``word``."""
    matches = [c for c, comment in readme_quick_start() if word in comment.lower()]
    assert len(matches) == 1, f"README quick start: one command about {word!r}: {matches}"
    return shlex.split(matches[0])


def offline_preview_per_stack() -> list[str]:
    """The README's offline preview command with the matrix's stack as STACK."""
    command = readme_command("offline preview")
    assert any(t.startswith("STACK=") for t in command), command
    return ["STACK=${{ matrix.stack }}" if t.startswith("STACK=") else t for t in command]


# --- lint -----------------------------------------------------------------------------------


def actionlint() -> Path:
    path = Path(sys.executable).parent / "actionlint"
    assert path.is_file(), f"{path} missing: pip install -r requirements-dev.txt"
    return path


def shellcheck() -> str:
    path = shutil.which("shellcheck")
    assert path, "shellcheck is not on PATH: run scripts/install-workflow-tools.sh (make test does)"
    return path


def run_actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(actionlint()),
            "-no-color",
            f"-shellcheck={shellcheck()}",
            "-pyflakes=",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


def test_actionlint_and_shellcheck_pass_on_the_workflows() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {PREVIEW, DEPLOY}
    result = run_actionlint(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_shellcheck_findings_in_run_scripts(tmp_path: Path) -> None:
    """The lint above can fail: an unquoted variable in a run script is reported."""
    broken = (WORKFLOWS / PREVIEW).read_text().replace('mkdir -p "$RESULTS"', "mkdir -p $RESULTS")
    assert "mkdir -p $RESULTS" in broken
    (tmp_path / PREVIEW).write_text(broken)
    result = run_actionlint(tmp_path / PREVIEW)
    assert result.returncode == 1
    assert "SC2086" in result.stdout


def test_shell_scripts_pass_shellcheck() -> None:
    scripts = [*sorted((REPO / "scripts").glob("*.sh")), REPO / ".ci" / "run"]
    assert ENVIRONMENT_SCRIPT in scripts
    result = subprocess.run(
        [shellcheck(), *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


# --- pull requests --------------------------------------------------------------------------


def test_pull_requests_run_the_readme_test_command(preview: dict[str, Any]) -> None:
    assert "pull_request" in preview["on"]
    test_command = readme_command("test")
    assert jobs_running(preview, *test_command), f"no job runs {test_command}"
    runs = [c for job in preview["jobs"].values() for _, c in job_commands(preview, job)]
    assert test_command in runs  # exactly the command, no extra targets or options


def test_pull_requests_preview_every_stack_offline_and_for_real(preview: dict[str, Any]) -> None:
    jobs = jobs_running(preview, "pulumi", "preview")
    assert len(jobs) == 1, jobs
    job = next(iter(jobs.values()))
    # every stack: the matrix is the unfiltered list of tools.stacks
    assert stack_listing(preview, job) == ["python", "-m", "tools.stacks", "list"]

    # the offline preview: the README's command, per stack
    offline = offline_preview_per_stack()
    assert find(preview, job, *offline), f"no step runs {offline}"

    # the real preview with the policy pack and the stack's own configuration
    [(_, real)] = find(preview, job, "pulumi", "preview")
    assert option(real, "--stack") == ["${{ matrix.stack }}"]
    assert "--diff" in real
    assert option(real, "--policy-pack") == ["policies"]
    assert option(real, "--policy-pack-config") == ["${{ matrix.policyConfig }}"]


def test_the_matrix_keys_the_workflows_read_are_what_tools_stacks_prints() -> None:
    entries = [stack.as_json() for stack in stacks.load_stacks()]
    assert {e["stack"] for e in entries} >= {"staging", "prod"}
    for entry in entries:
        if entry["stack"] in ("staging", "prod"):
            assert entry["policyConfig"] == f"policies/config/{entry['stack']}.json"
    keys = set(entries[0])
    for name in (PREVIEW, DEPLOY):
        used = set(re.findall(r"matrix\.(\w+)", (WORKFLOWS / name).read_text()))
        assert used, name
        assert used <= keys, f"{name} reads matrix keys tools.stacks does not print: {used - keys}"


def test_one_comment_carries_every_stack_result(preview: dict[str, Any]) -> None:
    [(_, preview_job)] = jobs_running(preview, "pulumi", "preview").items()
    [upload_step] = [s for s in preview_job["steps"] if uses(s, "actions/upload-artifact")]
    assert upload_step["if"] == "${{ always() }}"  # failed previews are reported too
    assert upload_step["with"]["name"] == "preview-${{ matrix.stack }}"
    recorded = find(preview, preview_job, "python", "-m", "tools.pr_comment", "record")
    assert recorded

    comment_jobs = jobs_running(preview, "python", "-m", "tools.pr_comment", "body")
    assert list(comment_jobs) == ["comment"]
    job = comment_jobs["comment"]
    assert "preview" in needs(job)
    assert "!cancelled()" in job["if"]  # after failed previews as well
    [download] = [s for s in job["steps"] if uses(s, "actions/download-artifact")]
    assert download["with"]["pattern"] == "preview-*"
    patch = find(preview, job, "gh", "api", "--method", "PATCH")
    post = find(preview, job, "gh", "api", "--method", "POST")
    assert patch and post
    assert find(preview, job, "python", "-m", "tools.pr_comment", "find-comment")


def test_only_the_comment_job_may_write_to_pull_requests() -> None:
    writers = {
        (name, job_id)
        for name, job_id, job in all_jobs()
        if job.get("permissions", {}).get("pull-requests") == "write"
    }
    assert writers == {(PREVIEW, "comment")}


def test_permissions_are_granted_per_job() -> None:
    for name in (PREVIEW, DEPLOY):
        assert load_workflow(name)["permissions"] in ({}, {"contents": "read"}), name
    for name, job_id, job in all_jobs():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{name}:{job_id} inherits permissions"
        checks_out = any(uses(step, "actions/checkout") for step in job["steps"])
        if not checks_out:
            assert permissions == {}, f"{name}:{job_id} reads nothing, so it gets nothing"
            continue
        assert permissions.get("contents") == "read", f"{name}:{job_id}"
        extra = {k: v for k, v in permissions.items() if k not in ("contents", "id-token")}
        assert extra in ({}, {"pull-requests": "write"}), f"{name}:{job_id}: {extra}"


def test_id_token_only_where_a_role_is_assumed() -> None:
    assumed = 0
    for name, job_id, job in all_jobs():
        assumes = [s for s in job["steps"] if uses(s, "aws-actions/configure-aws-credentials")]
        assumed += len(assumes)
        token = job.get("permissions", {}).get("id-token") == "write"
        assert token == bool(assumes), f"{name}:{job_id}"
        kind = "PREVIEW" if name == PREVIEW else "DEPLOY"
        for step in assumes:
            given = step["with"]
            assert given["role-to-assume"] == (
                f"${{{{ vars[format('AWS_{kind}_ROLE_ARN_{{0}}', matrix.variableSuffix)] }}}}"
            )
            assert given["aws-region"] == "${{ matrix.region }}"
            assert "github.run_id" in given["role-session-name"]
            assert not {k for k in given if "access-key" in k or "session-token" in k}
            if name == DEPLOY:
                assert given["role-duration-seconds"] == 14400  # a first up takes hours
            assert given["role-duration-seconds"] <= 14400  # the roles' maximum session
    assert assumed >= 3  # the PR preview and both deploy jobs


def test_no_long_lived_aws_keys() -> None:
    for name in (PREVIEW, DEPLOY):
        text = (WORKFLOWS / name).read_text()
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "aws-access-key-id"):
            assert key not in text, f"{name} mentions {key}"


def test_no_pull_request_job_declares_an_environment(preview: dict[str, Any]) -> None:
    """The preview roles trust the subject `repo:O/R:pull_request`, which a job with an
    environment never gets."""
    assert {"preview", "comment"} <= set(preview["jobs"]), list(preview["jobs"])
    assert all("environment" not in job for job in preview["jobs"].values())


def test_fork_pull_requests_skip_only_what_needs_aws(preview: dict[str, Any]) -> None:
    same_repo = "github.event.pull_request.head.repo.full_name == github.repository"
    [(_, job)] = jobs_running(preview, "pulumi", "preview").items()
    guarded = 0
    for index, step in enumerate(job["steps"]):
        needs_aws = (
            uses(step, "aws-actions/configure-aws-credentials")
            or uses(step, "pulumi/actions")
            or any(c[:2] == ["pulumi", "preview"] for c in step_commands(preview, job, step))
        )
        if needs_aws:
            assert step.get("if") == f"${{{{ {same_repo} }}}}", f"step {index}"
            guarded += 1
    assert guarded >= 3  # the credentials, the CLI install and the real preview
    offline = [s for s in job["steps"] if "make preview" in str(s.get("run", ""))]
    assert offline and all("if" not in s for s in offline)  # forks run the offline preview
    # the result says why the real preview is missing, so that the verdict does not fail
    assert job["env"]["FORK"] == f"${{{{ {same_repo.replace('==', '!=')} }}}}"
    [record] = [s for s in job["steps"] if "tools.pr_comment record" in str(s.get("run", ""))]
    assert record["if"] == "${{ always() }}"
    assert record["env"]["HEAD_REPO"] == "${{ github.event.pull_request.head.repo.full_name }}"
    assert 'fork=(--fork "$HEAD_REPO")' in record["run"] and '"${fork[@]}"' in record["run"]
    comment = preview["jobs"]["comment"]
    [post] = [s for s in comment["steps"] if "gh api" in str(s.get("run", ""))]
    assert post["if"] == f"${{{{ {same_repo} }}}}"  # a fork's token cannot comment


def test_each_preview_records_both_exit_codes(preview: dict[str, Any]) -> None:
    """The record step reads the exit codes of the two preview steps by their ids; a wrong id
    would read as "did not run"."""
    [(_, job)] = jobs_running(preview, "pulumi", "preview").items()
    [(_, record)] = find(preview, job, "python", "-m", "tools.pr_comment", "record")
    for flag, command in (
        ("--offline-exit", ("make", "preview")),
        ("--real-exit", ("pulumi", "preview")),
    ):
        [value] = option(record, flag)
        match = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.exit-code \}\}", value)
        assert match, value
        [step] = [s for s in job["steps"] if s.get("id") == match[1]]
        step_runs = step_commands(preview, job, step)
        assert any(tuple(c[:2]) == command for c in step_runs), flag
        assert 'echo "exit-code=$code" >>"$GITHUB_OUTPUT"' in step["run"]
        assert "|| code=$?" in step["run"]  # the failure is recorded, not raised at once
    assert option(record, "--policy-report") == ["build/${{ matrix.stack }}/policy-report.json"]
    assert option(record, "--changed-files")
    # what the pull request changes of this stack: its merge (HEAD) against the base (HEAD^1)
    [(_, diff)] = find(preview, job, "git", "diff")
    assert diff[2:] == [
        "--name-only",
        "HEAD^1",
        "HEAD",
        "--",
        "Pulumi.${{ matrix.stack }}.yaml",
        "${{ matrix.policyConfig }}",
    ]
    [checkout] = [s for s in job["steps"] if uses(s, "actions/checkout")]
    assert checkout["with"]["fetch-depth"] >= 2


def test_a_new_push_cancels_the_previous_preview(preview: dict[str, Any]) -> None:
    concurrency = preview["concurrency"]
    assert "github.event.pull_request.number" in concurrency["group"]
    assert concurrency["cancel-in-progress"] is True


# --- main -----------------------------------------------------------------------------------


def up_jobs(deploy: dict[str, Any]) -> dict[str, Job]:
    jobs = jobs_running(deploy, "pulumi", "up")
    assert jobs
    return jobs


def test_deploys_run_on_main(deploy: dict[str, Any]) -> None:
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in deploy["on"]
    assert "pull_request" not in deploy["on"]


def test_production_deploys_after_staging_with_approval(deploy: dict[str, Any]) -> None:
    jobs = up_jobs(deploy)
    roles: dict[str, str] = {}
    for job_id, job in jobs.items():
        listing = stack_listing(deploy, job)
        assert listing[:4] == ["python", "-m", "tools.stacks", "list"]
        [role] = option(listing, "--role")  # never the unfiltered list
        roles[job_id] = role
        environment = job.get("environment")
        environment = environment.get("name") if isinstance(environment, dict) else environment
        if role == "production":
            assert environment == "production", job_id
        else:
            # the staging deploy roles trust ref:refs/heads/main, which an environment hides
            assert environment is None, job_id
    production = [job_id for job_id, role in roles.items() if role == "production"]
    staging = [job_id for job_id, role in roles.items() if role == "staging"]
    assert len(production) == 1 and len(staging) == 1, roles
    assert staging[0] in needs(deploy["jobs"][production[0]])
    assert set(roles.values()) == set(stacks.ROLE_POLICY_CONFIG)  # every role deploys


def test_empty_stack_lists_start_no_matrix() -> None:
    matrices = 0
    for name, job_id, job in all_jobs():
        if "strategy" not in job:
            continue
        matrices += 1
        source_job, output = matrix_source(job)
        assert f"needs.{source_job}.outputs.{output} != '[]'" in str(job.get("if")), (
            f"{name}:{job_id}"
        )
    assert matrices >= 3  # the PR preview and both deploy jobs


def test_production_waits_for_every_staging_deploy(deploy: dict[str, Any]) -> None:
    condition = " ".join(str(deploy["jobs"]["production"]["if"]).split())
    assert "!cancelled()" in condition and "always()" not in condition
    assert "needs.staging.result == 'success'" in condition
    assert "needs.staging.result == 'skipped'" in condition  # no staging stack at all
    assert "needs.stacks.result == 'success'" in condition


def test_updates_of_one_stack_never_overlap(deploy: dict[str, Any]) -> None:
    groups = set()
    for job_id, job in up_jobs(deploy).items():
        concurrency = job["concurrency"]
        assert "${{ matrix.stack }}" in concurrency["group"], job_id
        assert concurrency["cancel-in-progress"] is False, job_id  # a killed up leaves a lock
        groups.add(concurrency["group"])
    assert len(groups) == 1  # the same stack name means the same group in every job
    assert deploy.get("concurrency") is None


def test_up_refreshes_and_keeps_the_policy_preview(deploy: dict[str, Any]) -> None:
    offline = offline_preview_per_stack()
    for job_id, job in up_jobs(deploy).items():
        [(up_index, up)] = find(deploy, job, "pulumi", "up")
        assert option(up, "--stack") == ["${{ matrix.stack }}"]
        assert "--refresh" in up and "--yes" in up
        assert "--skip-preview" not in up and "-f" not in up
        assert option(up, "--policy-pack") == ["policies"]
        assert option(up, "--policy-pack-config") == ["${{ matrix.policyConfig }}"]
        gates = [i for i, _ in find(deploy, job, *offline)]
        assert gates and min(gates) < up_index, f"{job_id}: no offline preview before up"
        assert not find(deploy, job, "pulumi", "destroy")


def test_state_backend_is_the_stacks_own_with_a_shared_fallback() -> None:
    """Each account keeps its stacks' state: the backend variable is per stack, with one
    shared variable for the stacks that have none of their own."""
    expected = (
        "${{ vars[format('PULUMI_BACKEND_URL_{0}', matrix.variableSuffix)] "
        "|| vars.PULUMI_BACKEND_URL }}"
    )
    seen = 0
    for _, job_id, job in all_jobs():
        for step in job.get("steps", []):
            run = str(step.get("run", ""))
            if "pulumi preview" in run or "pulumi up" in run:
                assert step["env"]["PULUMI_BACKEND_URL"] == expected, job_id
                seen += 1
    assert seen >= 3  # the PR preview and both deploy jobs


def test_deploys_log_docker_in_to_ecr_through_the_credential_helper(
    deploy: dict[str, Any],
) -> None:
    """`pulumi up` builds and pushes the backup image: Docker must reach the stack's ECR with
    the role's credentials, never a stored password."""
    for job_id, job in up_jobs(deploy).items():
        names = [str(step.get("name", "")) for step in job["steps"]]
        (index,) = [i for i, n in enumerate(names) if "ECR" in n]
        assert index < next(i for i, n in enumerate(names) if n.startswith("pulumi up")), job_id
        run = job["steps"][index]["run"]
        assert "amazon-ecr-credential-helper" in run and '"ecr-login"' in run
        assert "$ACCOUNT.dkr.ecr.$REGION.amazonaws.com" in run
        assert job["env"]["ACCOUNT"] == "${{ matrix.account }}"
        assert "docker login" not in run and "password" not in run.lower()


def test_one_required_check_fails_unless_every_job_succeeded(preview: dict[str, Any]) -> None:
    """GitHub counts a skipped required job as passed: the check to require runs always and
    fails unless the tests, the stack listing, the previews and the comment succeeded."""
    gate = preview["jobs"]["result"]
    assert gate["if"] == "${{ always() }}"
    others = set(preview["jobs"]) - {"result"}
    assert set(gate["needs"]) == others
    assert gate["permissions"] == {}
    script = gate["steps"][0]["run"]
    assert 'select(.value.result != "success")' in script and "exit 1" in script
    readme = (REPO / "README.md").read_text()
    assert f"`{gate['name']}` check" in readme


def test_the_comment_job_runs_the_base_branchs_tools(preview: dict[str, Any]) -> None:
    """The job with a token that writes to the pull request runs no code of the PR's."""
    writers = []
    for job_id, job in preview["jobs"].items():
        if job.get("permissions", {}).get("pull-requests") == "write":
            writers.append(job_id)
            (checkout,) = [s for s in job["steps"] if uses(s, "actions/checkout")]
            assert checkout["with"]["ref"] == "${{ github.event.pull_request.base.sha }}", job_id
    assert writers == ["comment"]


def test_jobs_that_reach_the_cluster_run_where_its_api_is_reachable() -> None:
    """The cluster's public endpoint admits only clusterPublicAccessCidrs: the real preview
    and the deploys run on the runner the CLUSTER_RUNNER variable names (self-hosted in the
    VPC, or one with a static egress address in that list)."""
    runner = "${{ vars.CLUSTER_RUNNER || 'ubuntu-24.04' }}"
    for name, job_id, job in all_jobs():
        runs_pulumi = any(
            c[:1] == ["pulumi"] and c[1:2] in (["up"], ["preview"])
            for step in job["steps"]
            for c in commands(str(step.get("run", "")))
        )
        assert (job["runs-on"] == runner) is runs_pulumi, f"{name}:{job_id}"


def test_every_job_has_a_timeout() -> None:
    for name, job_id, job in all_jobs():
        timeout = job.get("timeout-minutes")
        assert isinstance(timeout, int) and timeout > 0, f"{name}:{job_id}"
        assert timeout <= 240, f"{name}:{job_id}: longer than the role session"


def test_run_scripts_use_strict_bash() -> None:
    for name in (PREVIEW, DEPLOY):
        workflow = load_workflow(name)
        shell = workflow["defaults"]["run"]["shell"]
        assert shell.split()[0] == "bash" and "-euo" in shell and "pipefail" in shell
        assert workflow["jobs"], name
        for job_id, job in workflow["jobs"].items():
            assert all("shell" not in s for s in job["steps"]), f"{name}:{job_id}"


# --- pins and caches ------------------------------------------------------------------------


def test_every_action_is_pinned_to_a_commit_or_full_version() -> None:
    pins: dict[str, set[str]] = {}
    for name in (PREVIEW, DEPLOY):
        for line in (WORKFLOWS / name).read_text().splitlines():
            match = re.match(r"\s*(?:-\s+)?uses:\s*(\S+)\s*(?:#\s*(\S+))?", line)
            if not match:
                continue
            ref, comment = match[1], match[2]
            assert _SHA_PIN.match(ref) or _SEMVER_PIN.match(ref), f"{name}: {ref} not pinned"
            if _SHA_PIN.match(ref):
                assert comment and re.fullmatch(r"v\d+\.\d+\.\d+", comment), (
                    f"{name}: {ref} needs a '# vX.Y.Z' comment"
                )
            pins.setdefault(ref.split("@")[0], set()).add(ref)
    assert {"actions/checkout", "pulumi/actions", "aws-actions/configure-aws-credentials"} <= set(
        pins
    )
    assert all(len(refs) == 1 for refs in pins.values()), pins  # one version per action


def test_pulumi_cli_is_the_sdk_version_and_runs_in_plain_steps() -> None:
    requirements = (REPO / "requirements.txt").read_text()
    sdk = re.search(r"^pulumi==(\S+)$", requirements, re.MULTILINE)
    assert sdk
    installs = [
        step for _, _, job in all_jobs() for step in job["steps"] if uses(step, "pulumi/actions")
    ]
    assert installs
    for step in installs:
        assert str(step["with"]["pulumi-version"]) == sdk[1]
        assert "command" not in step["with"]  # install only: the flags are in run steps


def test_pip_downloads_are_cached_and_python_is_one_version() -> None:
    versions = set()
    cached = 0
    for name, job_id, job in all_jobs():
        installs = any(
            c[:1] == ["make"] or c[1:4] == ["-m", "pip", "install"]
            for step in job["steps"]
            for c in commands(str(step.get("run", "")))
        )
        setups = [s for s in job["steps"] if uses(s, "actions/setup-python")]
        if not any(uses(step, "actions/checkout") for step in job["steps"]):
            continue  # runs no Python of ours
        assert setups, f"{name}:{job_id}"
        for step in setups:
            versions.add(str(step["with"]["python-version"]))
            if installs:
                assert step["with"].get("cache") == "pip", f"{name}:{job_id}"
                paths = set(step["with"]["cache-dependency-path"].split())
                assert paths == {
                    "requirements.txt",
                    "requirements-dev.txt",
                    "policies/requirements.txt",
                }, f"{name}:{job_id}"
                cached += 1
    assert cached >= 6  # every job that installs: tests, listings, previews and deploys
    assert len(versions) == 1 and versions <= {"3.11", "3.12"}, versions


# --- the production environment -------------------------------------------------------------


def test_production_environment_requires_a_reviewer_and_deploys_from_main_only() -> None:
    settings = json.loads(ENVIRONMENT_FILE.read_text())
    assert settings["name"] == "production"
    assert len(settings["reviewers"]) >= 1
    assert all(
        r["type"] in ("Team", "User") and (r.get("slug") or r.get("login"))
        for r in settings["reviewers"]
    )
    assert settings["prevent_self_review"] is True
    policy = settings["deployment_branch_policy"]
    assert policy == {"protected_branches": False, "custom_branch_policies": True}
    assert settings["branch_policies"] == [{"name": "main", "type": "branch"}]


FAKE_GH = textwrap.dedent(
    """\
    #!{python}
    # A stand-in for gh: answers the calls of scripts/github-environments.sh, logs each call.
    import json, os, sys
    args = sys.argv[1:]
    call = {{"args": args}}
    if "--input" in args:
        call["input"] = json.load(sys.stdin)
    with open(os.environ["GH_LOG"], "a") as log:
        log.write(json.dumps(call) + "\\n")
    path = next((a for a in args if a.startswith(("repos/", "orgs/", "users/"))), "")
    if args[:2] == ["repo", "view"]:
        print("acme/exposcholar")
    elif path == "orgs/acme/teams/platform":
        print(42)
    elif path.startswith("repos/acme/exposcholar/branches/"):
        print(os.environ["GH_PROTECTED"])
    elif path.endswith("/deployment-branch-policies") and "--method" not in args:
        print(os.environ.get("GH_EXISTING", ""))
    elif path == "repos/acme/exposcholar/environments/production" and "--method" not in args:
        print("{{}}")
    """
)


def run_environment_script(
    tmp_path: Path, protected: str, existing: str = ""
) -> tuple[int, list[dict[str, Any]], str]:
    assert shutil.which("jq"), (
        "jq is not on PATH: run scripts/install-workflow-tools.sh (make test does)"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH.format(python=sys.executable))
    gh.chmod(0o755)
    log = tmp_path / "gh.log"
    log.touch()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GH_LOG": str(log),
        "GH_PROTECTED": protected,
        "GH_EXISTING": existing,
    }
    bash = shutil.which("bash")
    assert bash
    result = subprocess.run(
        [bash, str(ENVIRONMENT_SCRIPT)], capture_output=True, text=True, env=env, check=False
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return result.returncode, calls, result.stderr


def test_environment_script_applies_reviewers_by_id_and_the_main_only_policy(
    tmp_path: Path,
) -> None:
    code, calls, stderr = run_environment_script(
        tmp_path, protected="true", existing="7\tbranch\trelease/*"
    )
    assert code == 0, stderr
    [put] = [c for c in calls if "PUT" in c["args"]]
    assert put["args"][-3:] == ["repos/acme/exposcholar/environments/production", "--input", "-"]
    assert put["input"]["reviewers"] == [{"type": "Team", "id": 42}]
    assert put["input"]["prevent_self_review"] is True
    assert put["input"]["deployment_branch_policy"]["custom_branch_policies"] is True
    [delete] = [c for c in calls if "DELETE" in c["args"]]
    assert delete["args"][-1].endswith("/deployment-branch-policies/7")  # not in the file
    [post] = [c for c in calls if "POST" in c["args"]]
    assert "name=main" in post["args"] and "type=branch" in post["args"]


def test_environment_script_refuses_an_unprotected_branch(tmp_path: Path) -> None:
    code, calls, stderr = run_environment_script(tmp_path, protected="false")
    assert code != 0
    assert "not protected" in stderr
    # the calls were logged, up to the branch's protection the script asked about
    assert any("repos/acme/exposcholar/branches/main" in c["args"] for c in calls), calls
    assert not [c for c in calls if "--method" in c["args"]]  # nothing was changed


# --- the comment ----------------------------------------------------------------------------


def diagnostic(level: str, policy: str = "s3-no-public-read") -> dict[str, Any]:
    """A diagnostic as tools.analyzer writes it into policy-report.json."""
    return PolicyDiagnostic(
        policy_name=policy,
        policy_pack_name="exposcholar",
        policy_pack_version="0.1.0",
        enforcement_level=level,
        severity="medium",
        urn="urn:pulumi:prod::exposcholar::aws:s3/bucketV2:BucketV2::media",
        resource_type="aws:s3/bucketV2:BucketV2",
        resource_name="media",
        description="",
        message="the bucket allows public reads",
        source="analyze",
    ).to_json()


def result(stack: str = "prod", role: str = "production", **changes: Any) -> StackResult:
    base = StackResult(
        stack=stack,
        role=role,
        region="eu-west-1",
        policy_config=f"policies/config/{stack}.json",
        variable_suffix=stack.upper(),
        offline_exit=0,
        real_exit=0,
        policy=PolicySummary(0, 0, ()),
        offline_output=f"offline output of {stack}\n",
        real_output=f"real output of {stack}\n",
    )
    return dataclasses.replace(base, **changes)


def test_comment_has_one_marker_and_both_previews_of_every_stack() -> None:
    body = render([result("prod"), result("staging", "staging")], ["prod", "staging"])
    assert body.startswith(MARKER)
    assert body.count(MARKER) == 1
    for stack in ("prod", "staging"):
        assert f"offline output of {stack}" in body
        assert f"real output of {stack}" in body
        assert f"### `{stack}`" in body
    assert "❌" not in body


def test_long_outputs_keep_their_end_and_the_body_fits_github() -> None:
    lines = "".join(f"line {n:06d} of the output\n" for n in range(20_000))
    big = [
        result(stack, role, offline_output=lines, real_output=lines + "Policies: 1 mandatory\n")
        for stack, role in (("prod", "production"), ("staging", "staging"))
    ]
    body = render(big, ["prod", "staging"])
    assert len(body) < GITHUB_COMMENT_LIMIT
    assert len(body) > GITHUB_COMMENT_LIMIT // 2  # the room is used, not thrown away
    assert body.count("line 019999 of the output") == 4  # every section keeps its last line
    assert body.count("Policies: 1 mandatory") == 2
    assert "line 000000" not in body
    assert body.count("cut to fit the comment") == 4
    assert "artifact `preview-prod`" in body


def test_short_outputs_are_not_cut() -> None:
    body = render([result(offline_output="a\n" * 100)], ["prod"])
    assert "cut to fit" not in body
    assert "a\n" * 100 in body


def test_output_with_code_fences_stays_inside_its_block() -> None:
    body = render([result(real_output="```\n# not a heading\n```\n")], ["prod"])
    assert "````text\n```\n# not a heading\n```\n````" in body


def test_failed_real_preview_is_flagged_and_fails_the_check() -> None:
    failed = result(real_exit=255, policy=PolicySummary(1, 0, ("[mandatory] x (t: n)",)))
    assert failed.problems()
    body = render([failed], ["prod"])
    assert "❌ failed (exit 255)" in body
    assert "[mandatory] x (t: n)" in body
    assert not result().problems()


def test_fork_skip_is_explained_and_does_not_fail() -> None:
    fork = result(real_exit=None, fork="someone/exposcholar", real_output="")
    assert fork.problems() == []
    body = render([fork], ["prod"])
    assert "skipped (fork)" in body
    assert "`someone/exposcholar`" in body
    assert "OIDC token" in body
    assert "real output" not in body
    # without the fork, a missing real preview is a failure
    assert result(real_exit=None).problems()


@pytest.mark.parametrize(
    ("role", "changed", "policy", "fails"),
    [
        ("production", ("Pulumi.prod.yaml",), PolicySummary(0, 1, ("[advisory] a (t: n)",)), True),
        ("production", ("policies/config/prod.json",), None, True),  # no report
        ("production", ("Pulumi.prod.yaml",), PolicySummary(0, 0, ()), False),
        ("production", (), PolicySummary(0, 1, ("[advisory] a (t: n)",)), False),
        ("staging", ("Pulumi.prod.yaml",), PolicySummary(0, 1, ("[advisory] a (t: n)",)), False),
    ],
)
def test_changed_production_stacks_must_be_clean(
    role: str, changed: tuple[str, ...], policy: PolicySummary | None, fails: bool
) -> None:
    outcome = result(role=role, changed=changed, policy=policy)
    assert bool(outcome.problems()) is fails
    body = render([outcome], ["prod"])
    assert ("must be clean ❌" in body) is fails


def test_a_stack_without_result_is_reported_and_fails(tmp_path: Path) -> None:
    body = render([result("prod")], ["prod", "staging"])
    assert "`staging` | | ⚠️ no result" in body
    out = tmp_path / "preview-prod"
    _record(out, "--offline-exit", "0", "--real-exit", "0")
    stacks_json = json.dumps([{"stack": "prod"}, {"stack": "staging"}])
    assert cli.main(["verdict", str(tmp_path), "--stacks", stacks_json]) == 1
    assert cli.main(["verdict", str(tmp_path), "--stacks", "not json"]) == 2


def _record(directory: Path, *args: str) -> int:
    return cli.main(
        [
            "record",
            str(directory),
            "--stack",
            "prod",
            "--role",
            "production",
            "--region",
            "eu-west-1",
            "--policy-config",
            "policies/config/prod.json",
            "--variable-suffix",
            "PROD",
            *args,
        ]
    )


def test_record_verdict_and_body_from_the_workflow_files(tmp_path: Path) -> None:
    """The files the preview job writes, through the commands the workflow runs."""
    out = tmp_path / "results" / "preview-prod"
    out.mkdir(parents=True)
    report = tmp_path / "policy-report.json"
    report.write_text(json.dumps({"diagnostics": [diagnostic("advisory")]}))
    changed = tmp_path / "changed.txt"
    changed.write_text("Pulumi.prod.yaml\n")
    (out / "offline.txt").write_text("\x1b[32moffline\x1b[0m tree\n")
    (out / "real.txt").write_text("Previewing update (prod)\n")
    args = ["--offline-exit", "0", "--real-exit", "0", "--policy-report", str(report)]
    assert _record(out, *args) == 0
    assert cli.main(["verdict", str(out)]) == 0  # an advisory finding alone passes
    assert _record(out, *args, "--changed-files", str(changed)) == 0
    assert cli.main(["verdict", str(out)]) == 1  # ...unless the stack file changed

    loaded = StackResult.load(out)
    assert loaded.policy == PolicySummary(
        0, 1, ("[advisory] s3-no-public-read (aws:s3/bucketV2:BucketV2: media)",)
    )
    body_file, payload = tmp_path / "body.md", tmp_path / "body.json"
    stacks_json = json.dumps([{"stack": "prod"}])
    code = cli.main(
        [
            "body",
            str(tmp_path / "results"),
            "--stacks",
            stacks_json,
            "--output",
            str(body_file),
            "--payload",
            str(payload),
        ]
    )
    assert code == 0
    body = body_file.read_text()
    assert json.loads(payload.read_text()) == {"body": body}
    assert "offline tree" in body and "\x1b" not in body
    assert "`Pulumi.prod.yaml`" in body


def test_an_empty_stack_list_passes_with_a_note(tmp_path: Path) -> None:
    assert cli.main(["verdict", str(tmp_path), "--stacks", "[]"]) == 0
    assert "nothing to preview" in render([], [])


def test_the_bot_comment_with_the_marker_is_the_one_edited(tmp_path: Path) -> None:
    page1 = [
        {"id": 1, "user": {"login": "alice"}, "body": f"{MARKER}\nquoted by a person"},
        {"id": 2, "user": {"login": "github-actions[bot]"}, "body": "another bot comment"},
    ]
    page2 = [{"id": 3, "user": {"login": "github-actions[bot]"}, "body": f"{MARKER}\nold"}]
    text = json.dumps(page1) + json.dumps(page2) + "\n"  # gh api --paginate output
    assert find_comment(parse_pages(text)) == 3
    assert find_comment(parse_pages(json.dumps(page1))) is None
    comments = tmp_path / "comments.json"
    comments.write_text(text)
    assert cli.main(["find-comment", str(comments)]) == 0


def test_the_production_role_is_tools_stacks_one() -> None:
    assert PRODUCTION_ROLE in stacks.ROLE_POLICY_CONFIG


def test_pull_requests_run_checkov_on_every_stack_after_the_real_preview(
    preview: dict[str, Any],
) -> None:
    """Checkov's AWS and Kubernetes rules (``tools.preview --checkov``) on each stack of the
    matrix, with Checkov installed by the repository's script, after the real preview (a
    finding fails the job without skipping it) and with no condition (forks run it too)."""
    [job] = jobs_running(preview, "pulumi", "preview").values()
    [(index, command)] = [
        (i, c) for i, c in job_commands(preview, job) if "--checkov" in c and "tools.preview" in c
    ]
    assert command[:4] == [".venv/bin/python", "-m", "tools.preview", "${{ matrix.stack }}"]
    installs = [i for i, _ in find(preview, job, "bash", "scripts/install-checkov.sh")]
    assert installs and max(installs) <= index
    [(real, _)] = find(preview, job, "pulumi", "preview")
    assert real < index
    assert "if" not in job["steps"][index]
