"""Pulumi.yaml and the stack files, checked as the Pulumi CLI would (there is no CLI here),
plus the project's own rules: every key declared and documented, no secret in git, and stacks
that differ only in sizes, counts, retention and identity."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import yaml

from components.settings import KEYS
from tests import STACKS
from tools.config_docs import render_table, replace_table
from tools.preview import REPO_ROOT
from tools.project import ConfigFileError, check_stack, load_declarations, load_stack_config

SCHEMA = REPO_ROOT / "tests" / "fixtures" / "pulumi-project.schema.json"
"""Pulumi's published project-file schema, unchanged (its ``$id`` names the source:
pulumi/pulumi, sdk/go/common/workspace/project.json)."""


def _stack_file(stack: str) -> dict[str, object]:
    document = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())
    config = document["config"]
    assert isinstance(config, dict)
    return config


def test_project_file_matches_the_official_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(project)
    assert project["name"] == "exposcholar"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    assert project["description"]


def test_schema_check_would_catch_a_malformed_project_file() -> None:
    schema = json.loads(SCHEMA.read_text())
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    project["config"]["region"]["type"] = "object"  # not a type the CLI accepts
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(project)


def test_declarations_and_settings_keys_agree() -> None:
    declarations = load_declarations(REPO_ROOT)
    assert {"stackRole", "region", "accountId", "cacheAuthToken"} <= set(declarations)
    assert {d.key: (d.type, d.secret) for d in declarations.values()} == {
        k.name: (k.type, k.secret) for k in KEYS
    }
    for declaration in declarations.values():
        assert len(declaration.description) > 20, declaration.key


@pytest.mark.parametrize("stack", STACKS)
def test_stack_values_have_their_declared_types(stack: str) -> None:
    declarations = load_declarations(REPO_ROOT)
    python_type = {"string": str, "integer": int, "boolean": bool, "array": list}
    checked: set[str] = set()
    for full_key, value in _stack_file(stack).items():
        namespace, key = full_key.split(":", 1)
        if namespace != "exposcholar":
            continue
        checked.add(key)
        declared = declarations[key]
        assert isinstance(value, python_type[declared.type]), full_key
        if declared.type == "integer":
            assert not isinstance(value, bool), full_key
        if declared.items_type:
            assert isinstance(value, list)
            assert all(isinstance(item, python_type[declared.items_type]) for item in value)
    # a string, an integer, a boolean and an array of strings at least were checked
    assert {"region", "cacheNodeCount", "databaseMultiAz", "availabilityZones"} <= checked, checked


@pytest.mark.parametrize("stack", STACKS)
def test_stack_files_hold_every_required_non_secret_key_and_no_secret(stack: str) -> None:
    declarations = load_declarations(REPO_ROOT)
    assert {"region", "cacheAuthToken"} <= set(declarations), "a plain key and a secret one"
    config = _stack_file(stack)
    for declaration in declarations.values():
        full_key = f"exposcholar:{declaration.key}"
        if declaration.secret:
            assert full_key not in config, f"{full_key} is a secret: never commit it"
        else:
            assert full_key in config, f"{stack} must set {full_key} explicitly"
    assert config["pulumi:disable-default-providers"] == ["*"]


def test_stacks_differ_only_in_sizes_counts_retention_and_identity() -> None:
    staging, prod = _stack_file("staging"), _stack_file("prod")
    varies = {f"exposcholar:{k.name}" for k in KEYS if k.varies}
    differing = {k for k in staging.keys() | prod.keys() if staging.get(k) != prod.get(k)}
    assert {"exposcholar:accountId", "exposcholar:vpcCidr"} <= differing, "two files are read"
    assert differing <= varies, f"safety features must match across stacks: {differing - varies}"


def test_stack_networks_do_not_overlap() -> None:
    """Distinct ranges keep peering, VPN and restore-across-stacks possible."""
    staging = ipaddress.ip_network(str(_stack_file("staging")["exposcholar:vpcCidr"]))
    prod = ipaddress.ip_network(str(_stack_file("prod")["exposcholar:vpcCidr"]))
    assert not staging.overlaps(prod)


def test_secrets_get_marked_placeholders_offline() -> None:
    config = load_stack_config(REPO_ROOT, "staging")
    assert config.placeholders == (
        "cacheAuthToken",
        "djangoSecretKey",
        "alertWebhookUrl",
        "alertSmtpPassword",
        "alertDeadMansSwitchUrl",
        "grafanaAdminPassword",
    )
    assert "exposcholar:alertWebhookUrl" in config.secret_keys
    assert "placeholder" in config.values["exposcholar:alertWebhookUrl"]


def test_declared_defaults_fill_keys_a_stack_leaves_out(
    project_copy: Callable[[], Path],
) -> None:
    project = project_copy()
    path = project / "Pulumi.staging.yaml"
    document = yaml.safe_load(path.read_text())
    del document["config"]["exposcholar:flowLogTrafficType"]
    path.write_text(yaml.safe_dump(document))
    config = load_stack_config(project, "staging")
    assert config.values["exposcholar:flowLogTrafficType"] == "ALL"


def test_encrypted_values_are_accepted_as_secrets(project_copy: Callable[[], Path]) -> None:
    project = project_copy()
    path = project / "Pulumi.staging.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["exposcholar:alertWebhookUrl"] = {"secure": "v1:AAAAencrypted"}
    path.write_text(yaml.safe_dump(document))
    config = load_stack_config(project, "staging")
    assert set(config.placeholders) == {
        "cacheAuthToken",
        "djangoSecretKey",
        "alertWebhookUrl",
        "alertSmtpPassword",
        "alertDeadMansSwitchUrl",
        "grafanaAdminPassword",
    }
    assert "v1:AAAA" not in json.dumps(config.values)


def _set(project: Path, key: str, value: object) -> Path:
    """Write one entry of the project's staging stack file; returns the file."""
    path = project / "Pulumi.staging.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"][key] = value
    path.write_text(yaml.safe_dump(document))
    return path


CLI_STRINGS: list[tuple[str, str]] = [
    ("exposcholar:flowLogRetentionDays", "30"),
    ("exposcholar:databaseAllocatedStorageGb", "+20"),
    ("exposcholar:interfaceEndpoints", "true"),
    ("exposcholar:databaseMultiAz", "False"),
]
"""Values as ``pulumi config set key <value>`` stores them: strings, whatever the type."""


@pytest.mark.parametrize(("key", "value"), CLI_STRINGS)
def test_strings_the_cli_writes_are_accepted_for_their_declared_type(
    project_copy: Callable[[], Path], key: str, value: str
) -> None:
    project = project_copy()
    path = _set(project, key, value)
    assert yaml.safe_load(path.read_text())["config"][key] == value  # still a string
    config = check_stack(project, "staging")
    assert config.values[key] == value


STACK_FILE_ERRORS: list[tuple[str, object, str]] = [
    ("exposcholar:flowLogRetentionDays", "ninety", "declared type integer"),
    ("exposcholar:flowLogRetentionDays", "twenty", "declared type integer"),
    ("exposcholar:flowLogRetentionDays", "30.5", "declared type integer"),
    ("exposcholar:databaseMultiAz", "yes", "declared type boolean"),
    ("exposcholar:databaseMultiAz", "1", "declared type boolean"),
    ("exposcholar:interfaceEndpoints", "yes", "declared type boolean"),
    ("exposcholar:publicSubnetPrefix", True, "declared type integer"),
    ("exposcholar:availabilityZones", "eu-west-1a", "declared type array"),
    ("exposcholar:availabilityZones", ["eu-west-1a", 7], "array of string"),
    ("exposcholar:natGateway", "single", "no such key"),
    ("exposcholar:alertWebhookUrl", "https://hooks.example.org/T0", "pulumi config set --secret"),
    ("vpcCidr", "10.20.0.0/16", "namespaced key"),
]


@pytest.mark.parametrize(("key", "value", "expected"), STACK_FILE_ERRORS)
def test_stack_file_errors_name_the_key(
    project_copy: Callable[[], Path], key: str, value: object, expected: str
) -> None:
    project = project_copy()
    _set(project, key, value)
    with pytest.raises(ConfigFileError) as caught:
        load_stack_config(project, "staging")
    assert [p.key for p in caught.value.problems] == [key]
    assert expected in caught.value.problems[0].expected


def test_all_problems_of_a_stack_file_are_named_in_one_run(
    project_copy: Callable[[], Path],
) -> None:
    """A wrong type and an unknown key (the CLI's own checks) do not hide an invalid value
    that only the settings judge: one run names all three, each once."""
    project = project_copy()
    path = project / "Pulumi.staging.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["exposcholar:flowLogRetentionDays"] = "twenty"
    document["config"]["exposcholar:vpcCidr"] = "10.20.0.0/33"
    document["config"]["exposcholar:natGateway"] = "single"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigFileError) as caught:
        check_stack(project, "staging")
    keys = sorted(p.key for p in caught.value.problems)
    assert keys == [
        "exposcholar:flowLogRetentionDays",
        "exposcholar:natGateway",
        "exposcholar:vpcCidr",
    ]


def test_missing_stack_file_and_unknown_stack(project_copy: Callable[[], Path]) -> None:
    project = project_copy()
    (project / "Pulumi.prod.yaml").unlink()
    with pytest.raises(ConfigFileError) as caught:
        load_stack_config(project, "prod")
    assert caught.value.problems[0].key == "Pulumi.prod.yaml"
    assert "a stack file" in caught.value.problems[0].expected
    with pytest.raises(ConfigFileError) as caught:
        load_stack_config(project, "qa")
    assert caught.value.problems[0].key == "Pulumi.qa.yaml"
    assert "stacks with a file: staging" in caught.value.problems[0].expected
    with pytest.raises(ConfigFileError) as caught:
        load_stack_config(project, "QA!")
    assert caught.value.problems[0].key == "stack"
    assert "lower-case letters" in caught.value.problems[0].expected


def test_unparseable_stack_file_names_the_file(project_copy: Callable[[], Path]) -> None:
    project = project_copy()
    (project / "Pulumi.staging.yaml").write_text("config:\n  exposcholar:region: [eu-west-1\n")
    with pytest.raises(ConfigFileError) as caught:
        load_stack_config(project, "staging")
    assert caught.value.problems[0].key == "Pulumi.staging.yaml"
    assert "valid YAML" in caught.value.problems[0].expected


def test_readme_configuration_table_is_current() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert replace_table(readme, render_table()) == readme, (
        "README's key table is stale: run python -m tools.config_docs --write"
    )
    assert readme.startswith("# ExpoScholar infrastructure\n\n## Quick start\n")


def test_no_tracked_file_reaches_outside_the_repository() -> None:
    """A user's clone has nothing beside it: no tracked file may read or link a sibling folder
    of the team's, or a path of one machine."""
    forbidden = ("../" + "shared", "/work" + "/")
    git = shutil.which("git")
    assert git, "git is not on PATH"
    tracked = (
        subprocess.run([git, "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    names = [name for name in tracked if name]
    assert {"Pulumi.yaml", "README.md", "__main__.py", "tests/conftest.py"} <= set(names)
    offenders = []
    for name in names:
        path = REPO_ROOT / name
        if not path.is_file() or path.suffix in {".png", ".jpg", ".gz"}:
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{name}: {word}" for word in forbidden if word in text]
    assert offenders == []
