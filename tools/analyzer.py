"""The offline policy check: the CrossGuard pack runs as its own process and is driven over the
real Analyzer gRPC protocol, the way ``pulumi preview --policy-pack DIR`` drives it.

How the Pulumi CLI (3.272) starts a Python pack, and what this module reproduces:

* ``PulumiPolicy.yaml`` must say ``runtime: python``. The CLI runs the shim
  ``pulumi-analyzer-policy-python <engineAddr> . [-virtualenv=DIR]`` in the pack's folder; the
  shim runs ``python -u -m pulumi.policy <engineAddr> .`` (the virtualenv's python when the
  runtime option is set, else ``python3``). Here: ``sys.executable -u -m pulumi.policy <addr> .``
  with the pack folder as working directory.
* Environment: the CLI's own environment plus ``PULUMI_CONFIG`` (the stack's config as JSON, only
  when not empty), ``PULUMI_ORGANIZATION``, ``PULUMI_PROJECT``, ``PULUMI_STACK`` and
  ``PULUMI_DRY_RUN`` (``true`` for a preview).
* ``pulumi.policy``'s ``main`` parses the engine address but never uses it: it configures the
  runtime settings without an engine, so ``pulumi.log`` in a pack writes to stderr. No engine is
  served here; a placeholder address is passed.
* ``PolicyPack(...)`` binds ``127.0.0.1:0`` and writes the port and a newline to stdout; the CLI
  reads stdout up to that first newline and dials it (insecure, 400 MB messages).
* Then: ``Handshake`` and ``ConfigureStack`` (UNIMPLEMENTED tolerated), ``GetAnalyzerInfo``, the
  policy configuration reconciled as the engine does (each policy's level and schema defaults,
  the pack's initial config, then the ``--policy-pack-config`` file with its ``all`` key; the
  result validated against each policy's schema) sent with ``Configure``; for every registered
  resource (the stack, components, providers and custom resources alike, as the step generator
  does) ``Remediate`` then ``Analyze`` with its inputs and its provider's type, name, URN and
  inputs; finally ``AnalyzeStack`` with every resource's outputs, parent, dependencies and
  property dependencies. A diagnostic at level ``remediate`` is reported as ``mandatory``.
* Property values travel as the engine marshals them: secrets as the signature object
  (``{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": ...}``),
  unknowns as the unknown sentinel string, keys starting with ``__`` left out.

Offline differences: the plan keeps secret values masked (``[secret]``), so a policy sees that
text as the secret's value; unknowns are ``[unknown]`` in the plan and travel as the sentinel.
Inputs are what the program registered (no provider ``Check`` defaults), outputs are the mock
provider's. Stack tags are not known offline and are not sent.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import grpc  # type: ignore[import-untyped]
import jsonschema
import yaml
from google.protobuf import (  # type: ignore[import-untyped]
    empty_pb2,
    json_format,
    struct_pb2,
)
from pulumi.runtime import rpc
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from tools.mocks import MASK, UNKNOWN, CapturedResource
from tools.plan import Plan

SECRET_SIG = rpc._special_sig_key
SECRET_VALUE = rpc._special_secret_sig
UNKNOWN_SENTINEL = rpc.UNKNOWN
"""The engine marshals every unknown value as this string."""

PACK_MODULE = "pulumi.policy"
ENGINE_ADDRESS = "127.0.0.1:0"
"""Passed where the CLI passes its engine's address; ``pulumi.policy`` parses and ignores it."""
MAX_MESSAGE_SIZE = 400 * 1024 * 1024
STACK_TYPE = "pulumi:pulumi:Stack"
DEFAULT_ORGANIZATION = "organization"
"""The organization of a DIY backend's stacks (and what the SDK assumes when none is set)."""

LEVELS = ("advisory", "mandatory", "remediate", "disabled")
_LEVEL_TO_PROTO = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "remediate": analyzer_pb2.REMEDIATE,
    "disabled": analyzer_pb2.DISABLED,
}
_PROTO_TO_LEVEL = {number: name for name, number in _LEVEL_TO_PROTO.items()}
SEVERITIES = ("unspecified", "low", "medium", "high", "critical")
"""Indexed by the protocol's ``PolicySeverity`` number."""
_POLICY_TYPES = {
    analyzer_pb2.POLICY_TYPE_RESOURCE: "resource",
    analyzer_pb2.POLICY_TYPE_STACK: "stack",
}


class PolicyCheckError(Exception):
    """The policy check could not run; ``lines`` say why, one problem per line."""

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)


class PolicyInputError(PolicyCheckError):
    """Bad input: no pack where expected, a wrong ``PulumiPolicy.yaml`` or policy config."""


class PolicyPackError(PolicyCheckError):
    """The pack process failed: it died, printed no port, or an RPC failed."""


# --- the pack's project file ---------------------------------------------------------------


@dataclass(frozen=True)
class PackProject:
    """``PulumiPolicy.yaml`` of a pack folder."""

    path: Path
    runtime: str
    options: dict[str, Any]
    version: str | None
    description: str | None


def load_pack_project(pack_dir: Path) -> PackProject:
    project_file = pack_dir / "PulumiPolicy.yaml"
    if not pack_dir.is_dir():
        raise PolicyInputError([f"error: policy pack not found: no folder {pack_dir}"])
    try:
        document = yaml.safe_load(project_file.read_text())
    except OSError as exc:
        raise PolicyInputError(
            [f"error: policy pack {pack_dir}: cannot read {project_file.name} ({exc.strerror})"]
        ) from None
    except yaml.YAMLError as exc:
        raise PolicyInputError(
            [f"error: policy pack {pack_dir}: {project_file.name} is not YAML: {exc}"]
        ) from None
    if not isinstance(document, dict):
        raise PolicyInputError([f"error: {project_file}: expected a mapping"])
    runtime = document.get("runtime")
    options: dict[str, Any] = {}
    if isinstance(runtime, dict):
        options = dict(runtime.get("options") or {})
        runtime = runtime.get("name")
    if runtime != "python":
        raise PolicyInputError(
            [f"error: {project_file}: runtime: got {runtime!r}; expected 'python'"]
        )
    version = document.get("version")
    description = document.get("description")
    return PackProject(
        path=pack_dir,
        runtime=runtime,
        options=options,
        version=str(version) if version is not None else None,
        description=str(description) if description is not None else None,
    )


def pack_python(project: PackProject) -> str:
    """The interpreter the shim would use: the pack's virtualenv when its runtime names one."""
    virtualenv = project.options.get("virtualenv")
    if not virtualenv:
        return sys.executable
    venv = Path(str(virtualenv))
    if not venv.is_absolute():
        venv = project.path / venv
    python = venv / "bin" / "python"
    if not python.is_file():
        raise PolicyInputError(
            [f'error: policy pack {project.path}: "{venv}" doesn\'t appear to be a virtual '
             "environment (runtime option virtualenv)"]
        )  # fmt: skip
    return str(python)


# --- policy configuration, as the engine reconciles it -------------------------------------


@dataclass(frozen=True)
class PolicyConfig:
    """One policy's configuration: an enforcement level and properties (either may be absent)."""

    enforcement_level: str | None = None
    properties: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"enforcementLevel": self.enforcement_level, "properties": self.properties or {}}


def parse_policy_config(document: Any, source: str) -> dict[str, PolicyConfig]:
    """The ``--policy-pack-config`` format: each key a level, or an object with an optional
    ``enforcementLevel`` and properties; ``all`` sets every policy's level."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise PolicyInputError([f"error: {source}: expected a JSON object"])
    result: dict[str, PolicyConfig] = {}
    problems: list[str] = []
    for key, value in document.items():
        level: str | None = None
        properties: dict[str, Any] | None = None
        if isinstance(value, str):
            level = value
        elif isinstance(value, dict):
            rest = dict(value)
            if "enforcementLevel" in rest:
                level = rest.pop("enforcementLevel")
                if not isinstance(level, str):
                    problems.append(f"{key}: enforcementLevel: got {level!r}; expected a string")
                    continue
            properties = rest or None
        else:
            problems.append(f"{key}: got {value!r}; expected a level or an object")
            continue
        if level is not None and level not in LEVELS:
            problems.append(f"{key}: got {level!r}; expected one of {', '.join(LEVELS)}")
            continue
        if level is None and not properties:
            continue  # an empty entry configures nothing
        result[str(key)] = PolicyConfig(level, properties)
    if problems:
        raise PolicyInputError(
            [f"error: {source}: {len(problems)} policy config problem(s):"]
            + [f"  - {problem}" for problem in problems]
        )
    return result


def load_policy_config(path: Path) -> dict[str, PolicyConfig]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyInputError(
            [f"error: policy config {path}: cannot read it ({exc.strerror})"]
        ) from None
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyInputError([f"error: policy config {path}: not JSON: {exc}"]) from None
    return parse_policy_config(document, str(path))


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    description: str
    enforcement_level: str
    """The level the pack declares (its own default when the policy has none)."""
    severity: str
    policy_type: str
    display_name: str = ""
    config_schema: dict[str, Any] | None = None
    """``{"properties": {...}, "required": [...]}`` as GetAnalyzerInfo returned it."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "displayName": self.display_name,
            "description": self.description,
            "type": self.policy_type,
            "enforcementLevel": self.enforcement_level,
            "severity": self.severity,
            "configSchema": self.config_schema,
        }


@dataclass(frozen=True)
class AnalyzerInfo:
    name: str
    version: str
    supports_config: bool
    policies: list[PolicyInfo]
    initial_config: dict[str, PolicyConfig] = field(default_factory=dict)
    display_name: str = ""
    description: str = ""

    def policy(self, name: str) -> PolicyInfo:
        (found,) = [p for p in self.policies if p.name == name]
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "displayName": self.display_name,
            "description": self.description,
            "supportsConfig": self.supports_config,
            "initialConfig": {k: v.to_json() for k, v in sorted(self.initial_config.items())},
            "policies": [p.to_json() for p in self.policies],
        }


def reconcile_policy_config(
    info: AnalyzerInfo, given: Mapping[str, PolicyConfig]
) -> tuple[dict[str, PolicyConfig], list[str]]:
    """The configuration the engine sends with ``Configure``, and its validation errors.

    Every policy starts at its declared level with its schema's ``default`` values; the pack's
    initial config, then the given config, are applied on top (``all`` first sets every
    policy's level; each entry, ``all`` included, is then set or merged by name). The result is
    validated against each policy's config schema.
    """
    result: dict[str, PolicyConfig] = {}
    for policy in info.policies:
        schema_properties = (policy.config_schema or {}).get("properties") or {}
        defaults = {
            key: schema["default"]
            for key, schema in schema_properties.items()
            if isinstance(schema, dict) and "default" in schema
        }
        result[policy.name] = PolicyConfig(policy.enforcement_level, defaults or None)
    for overlay in (info.initial_config, given):
        if overlay:
            result = _apply_config(result, overlay)
    errors: list[str] = []
    for policy in info.policies:
        if policy.config_schema is None:
            continue
        schema: dict[str, Any] = {"type": "object"}
        if policy.config_schema.get("properties"):
            schema["properties"] = policy.config_schema["properties"]
        if policy.config_schema.get("required"):
            schema["required"] = policy.config_schema["required"]
        properties = result[policy.name].properties or {}
        validator = jsonschema.Draft7Validator(schema)
        for error in sorted(validator.iter_errors(properties), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.path)
            errors.append(f"{policy.name}: {where + ': ' if where else ''}{error.message}")
    return result, errors


def _apply_config(
    result: dict[str, PolicyConfig], overlay: Mapping[str, PolicyConfig]
) -> dict[str, PolicyConfig]:
    result = dict(result)
    every = overlay.get("all")
    if every is not None and every.enforcement_level in LEVELS:
        result = {k: PolicyConfig(every.enforcement_level, v.properties) for k, v in result.items()}
    for name, given in overlay.items():
        current = result.get(name, PolicyConfig())
        level = current.enforcement_level
        if given.enforcement_level in LEVELS:
            level = given.enforcement_level
        properties = current.properties
        if given.properties:
            properties = {**(properties or {}), **given.properties}
        result[name] = PolicyConfig(level, properties)
    return result


# --- wire encoding -------------------------------------------------------------------------


def encode_value(value: Any) -> Any:
    """A captured (masked) value as the engine would marshal it for an analyzer."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            return {SECRET_SIG: SECRET_VALUE, "value": encode_value(value.get("value"))}
        if SECRET_SIG in value:
            return dict(value)  # an asset, archive or resource reference: already in wire form
        return {str(k): encode_value(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if value == MASK:
        return {SECRET_SIG: SECRET_VALUE, "value": MASK}
    if value == UNKNOWN:
        return UNKNOWN_SENTINEL
    return value


def encode_properties(properties: Mapping[str, Any]) -> struct_pb2.Struct:
    return _plain_struct(encode_value(dict(properties)))


def _plain_struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(dict(values))
    return struct


# --- the report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyDiagnostic:
    policy_name: str
    policy_pack_name: str
    policy_pack_version: str
    enforcement_level: str
    severity: str
    urn: str
    resource_type: str
    resource_name: str
    description: str
    message: str
    source: str
    """``analyze`` (one resource's inputs) or ``analyzeStack`` (the whole stack's outputs)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "policyName": self.policy_name,
            "policyPackName": self.policy_pack_name,
            "policyPackVersion": self.policy_pack_version,
            "enforcementLevel": self.enforcement_level,
            "severity": self.severity,
            "urn": self.urn,
            "resourceType": self.resource_type,
            "resourceName": self.resource_name,
            "description": self.description,
            "message": self.message,
            "source": self.source,
        }


@dataclass(frozen=True)
class PolicyRemediation:
    policy_name: str
    policy_pack_name: str
    policy_pack_version: str
    urn: str
    resource_type: str
    resource_name: str
    description: str
    properties: dict[str, Any]
    """The resource's inputs after the remediation, in wire form (secrets as signature objects)."""
    changed_keys: list[str]
    """The top-level inputs the remediation set, changed or removed."""

    def to_json(self) -> dict[str, Any]:
        return {
            "policyName": self.policy_name,
            "policyPackName": self.policy_pack_name,
            "policyPackVersion": self.policy_pack_version,
            "urn": self.urn,
            "resourceType": self.resource_type,
            "resourceName": self.resource_name,
            "description": self.description,
            "changedKeys": self.changed_keys,
        }


_LEVEL_ORDER = {"mandatory": 0, "remediate": 1, "advisory": 2, "disabled": 3}
_ICONS = {"failed": "❌", "warned": "⚠️", "passed": "✅"}


@dataclass
class PolicyReport:
    stack: str
    project: str
    pack: AnalyzerInfo
    pack_label: str
    """How the pack is named in the output: ``(local: <label>)``."""
    config_file: str | None
    config: dict[str, PolicyConfig]
    diagnostics: list[PolicyDiagnostic]
    remediations: list[PolicyRemediation] = field(default_factory=list)
    resources_analyzed: int = 0
    not_applicable: dict[str, int] = field(default_factory=dict)
    """Per policy: how many resources (or stacks) it declared itself not applicable to."""
    warnings: list[str] = field(default_factory=list)
    pack_output: list[str] = field(default_factory=list)
    """What the pack process wrote besides its port (stdout, then stderr)."""

    @property
    def has_mandatory_violations(self) -> bool:
        return any(d.enforcement_level == "mandatory" for d in self.diagnostics)

    def mandatory(self) -> list[PolicyDiagnostic]:
        return [d for d in self.sorted_diagnostics() if d.enforcement_level == "mandatory"]

    def sorted_diagnostics(self) -> list[PolicyDiagnostic]:
        return sorted(
            self.diagnostics,
            key=lambda d: (
                d.policy_pack_name,
                _LEVEL_ORDER.get(d.enforcement_level, 9),
                -SEVERITIES.index(d.severity) if d.severity in SEVERITIES else 0,
                d.policy_name,
                d.urn,
                d.message,
            ),
        )

    def counts(self) -> dict[str, Any]:
        levels = Counter(d.enforcement_level for d in self.diagnostics)
        return {
            "resourcesAnalyzed": self.resources_analyzed,
            "policies": len(self.pack.policies),
            "diagnostics": len(self.diagnostics),
            "mandatory": levels.get("mandatory", 0),
            "advisory": levels.get("advisory", 0),
            "remediations": len(self.remediations),
            "bySeverity": dict(sorted(Counter(d.severity for d in self.diagnostics).items())),
            "byPolicy": dict(sorted(Counter(d.policy_name for d in self.diagnostics).items())),
            "notApplicable": dict(sorted(self.not_applicable.items())),
        }

    def effective_level(self, policy: str) -> str | None:
        config = self.config.get(policy)
        return config.enforcement_level if config else None

    def to_json(self) -> dict[str, Any]:
        pack = self.pack.to_json()
        for policy in pack["policies"]:
            policy["effectiveEnforcementLevel"] = self.effective_level(policy["name"])
        return {
            "stack": self.stack,
            "project": self.project,
            "pack": {**pack, "path": self.pack_label},
            "configFile": self.config_file,
            "config": {k: v.to_json() for k, v in sorted(self.config.items())},
            "hasMandatoryViolations": self.has_mandatory_violations,
            "counts": self.counts(),
            "diagnostics": [d.to_json() for d in self.sorted_diagnostics()],
            "remediations": [r.to_json() for r in self.remediations],
            "warnings": self.warnings,
            "packOutput": self.pack_output,
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")
        tmp.replace(path)

    def render(self) -> str:
        """The ``Policies:`` section as ``pulumi preview`` prints it, grouped by pack, then by
        level and severity (mandatory and most severe first)."""
        lines = ["Policies:"]
        packs: dict[tuple[str, str], list[PolicyDiagnostic]] = {
            (self.pack.name, self.pack.version): []
        }
        for diagnostic in self.sorted_diagnostics():
            key = (diagnostic.policy_pack_name, diagnostic.policy_pack_version)
            packs.setdefault(key, []).append(diagnostic)
        for (name, version), diagnostics in packs.items():
            remediations = [r for r in self.remediations if r.policy_pack_name == name]
            if any(d.enforcement_level == "mandatory" for d in diagnostics):
                status = "failed"
            elif diagnostics:
                status = "warned"
            else:
                status = "passed"
            lines.append(f"    {_ICONS[status]} {name}@v{version} (local: {self.pack_label})")
            for diagnostic in diagnostics:
                severity = diagnostic.severity
                shown = f"[severity: {severity}] " if severity != "unspecified" else ""
                lines.append(
                    f"        - [{diagnostic.enforcement_level}]  {shown}{diagnostic.policy_name}"
                    f"  ({diagnostic.resource_type}: {diagnostic.resource_name})"
                )
                lines.extend(f"          {line}" for line in diagnostic.message.splitlines())
            for remediation in remediations:
                lines.append(
                    f"        - [remediate]  {remediation.policy_name}"
                    f"  ({remediation.resource_type}: {remediation.resource_name})"
                )
                lines.extend(f"          {line}" for line in remediation.description.splitlines())
        counts = self.counts()
        lines.append(
            f"    {counts['mandatory']} mandatory, {counts['advisory']} advisory violation(s); "
            f"{len(self.pack.policies)} policies over {self.resources_analyzed} resources"
        )
        lines.extend(f"    warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)

    def print_report(self, file: TextIO | None = None) -> None:
        print(self.render(), file=file if file is not None else sys.stdout)


# --- the pack process ----------------------------------------------------------------------


class PolicyPackProcess:
    """The pack running as its own process, started as the CLI starts it; a context manager
    that always stops it (terminate, then kill after ``stop_timeout``)."""

    def __init__(
        self,
        project: PackProject,
        env: Mapping[str, str],
        *,
        start_timeout: float = 60.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.project = project
        self.env = dict(env)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.command = [pack_python(project), "-u", "-m", PACK_MODULE, ENGINE_ADDRESS, "."]
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.channel: Any = None
        self._first_line: queue.Queue[str | None] = queue.Queue()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> PolicyPackProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def output(self) -> list[str]:
        return [*self._stdout, *self._stderr]

    def start(self) -> int:
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.command,
            cwd=self.project.path,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._pump(self.process.stdout, self._stdout, self._first_line)
        self._pump(self.process.stderr, self._stderr, None)
        try:
            first = self._first_line.get(timeout=self.start_timeout)
        except queue.Empty:
            raise self.failure(f"printed no port within {self.start_timeout:g} s") from None
        if first is None:
            code = self._wait_exit()
            raise self.failure(f"exited with code {code} before printing its port")
        try:
            self.port = int(first.strip())
        except ValueError:
            raise self.failure(f"wrote a non-numeric port to stdout ({first!r})") from None
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
            ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
        ]
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}", options=options)
        try:
            grpc.channel_ready_future(self.channel).result(timeout=self.start_timeout)
        except grpc.FutureTimeoutError:
            raise self.failure(f"did not answer on port {self.port}") from None
        return self.port

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for thread in self._threads:
            thread.join(timeout=self.stop_timeout)
        if process is not None:
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()

    def failure(self, what: str) -> PolicyPackError:
        """An error naming the pack and carrying what it wrote on stderr."""
        lines = [f"error: policy pack {self.project.path} {what}"]
        stderr = self._stderr_when_done()
        if stderr:
            lines.append("its stderr:")
            lines.extend(f"  {line}" for line in stderr)
        else:
            lines.append("its stderr was empty")
        return PolicyPackError(lines)

    def _stderr_when_done(self) -> list[str]:
        if self.process is not None and self.process.poll() is not None and len(self._threads) > 1:
            self._threads[1].join(timeout=self.stop_timeout)
        return list(self._stderr)

    def _wait_exit(self) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            return None

    def _pump(self, stream: Any, sink: list[str], first: queue.Queue[str | None] | None) -> None:
        def run() -> None:
            waiting = first is not None
            for raw in iter(stream.readline, b""):
                line = raw.decode(errors="replace").rstrip("\r\n")
                if waiting and first is not None:
                    first.put(line)
                    waiting = False
                else:
                    sink.append(line)
            if waiting and first is not None:
                first.put(None)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)


def pack_environment(
    *,
    project: str,
    stack: str,
    organization: str,
    config: Mapping[str, str],
    dry_run: bool = True,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The pack's environment as the CLI builds it (its own plus the ``PULUMI_*`` variables)."""
    env = dict(os.environ if base is None else base)
    if config:
        env["PULUMI_CONFIG"] = json.dumps(dict(config))
    if organization:
        env["PULUMI_ORGANIZATION"] = organization
    env["PULUMI_PROJECT"] = project
    env["PULUMI_STACK"] = stack
    env["PULUMI_DRY_RUN"] = "true" if dry_run else "false"
    return env


# --- driving the protocol ------------------------------------------------------------------


@dataclass
class _Subject:
    """One resource as the engine knows it when it calls the analyzer."""

    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str | None
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    protect: bool
    provider: str | None


def _subjects(plan: Plan) -> list[_Subject]:
    stack = _Subject(
        urn=plan.stack_urn,
        type=STACK_TYPE,
        name=urn_name(plan.stack_urn),
        inputs={},
        outputs=dict(plan.outputs),
        parent=None,
        dependencies=[],
        property_dependencies={},
        protect=False,
        provider=None,
    )
    return [stack, *_subjects_of(plan.resources)]


def _subjects_of(resources: Iterable[CapturedResource]) -> list[_Subject]:
    return [
        _Subject(
            urn=r.urn,
            type=r.type,
            name=r.name,
            inputs=dict(r.inputs),
            outputs={**r.inputs, **r.outputs},
            parent=r.parent,
            dependencies=list(r.dependencies),
            property_dependencies={k: list(v) for k, v in r.property_dependencies.items()},
            protect=r.protect,
            provider=r.provider,
        )
        for r in resources
    ]


def urn_name(urn: str) -> str:
    return urn.split("::", 3)[-1]


def urn_type(urn: str) -> str:
    parts = urn.split("::")
    return parts[2].rsplit("$", 1)[-1] if len(parts) > 3 else ""


class _Client:
    def __init__(self, process: PolicyPackProcess, timeout: float) -> None:
        self.process = process
        self.stub = analyzer_pb2_grpc.AnalyzerStub(process.channel)
        self.timeout = timeout

    def call(self, method: str, request: Any, *, what: str = "", optional: bool = False) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            code = exc.code()
            if optional and code == grpc.StatusCode.UNIMPLEMENTED:
                return None
            label = f"{method}({what})" if what else method
            self.process.stop()  # the check is over: stopping also collects all of its stderr
            raise self.process.failure(
                f"failed in {label}: {code.name if code else 'error'}: {exc.details()}"
            ) from None


class StreamingCheck:
    """``Remediate`` and ``Analyze`` of each resource in a worker thread, fed as the program
    registers resources: the pack's process works on the other core while the program is
    still running, instead of after it. ``PolicySession.finish`` completes the check."""

    def __init__(self, session: PolicySession, run: _Run) -> None:
        self.session = session
        self._run = run
        self._queue: queue.Queue[tuple[CapturedResource, bool] | None] = queue.Queue()
        self.seen: set[str] = set()
        self.error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._work, name="policy-analyze", daemon=True)
        self._thread.start()

    def add(self, resource: CapturedResource, *, analyze: bool = True) -> None:
        """Called for every captured resource, in registration order; ``analyze=False`` only
        makes it known (a provider another process analyzes may be referenced here)."""
        if resource.type != STACK_TYPE:
            self._queue.put((resource, analyze))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            resource, analyze = item
            if self.error is not None or self._cancelled:
                continue  # drain: the first failure is reported; a cancelled check stops
            try:
                (subject,) = _subjects_of([resource])
                provider = (subject.provider or "").rsplit("::", 1)[0]
                if provider and provider not in self._run.by_urn:
                    # the engine registers a provider before anything that uses it; analyzing
                    # without it would miss what policies read from it (default tags)
                    raise PolicyPackError(
                        [f"error: {subject.urn} arrived before its provider {provider}"]
                    )
                self._run.by_urn[subject.urn] = subject
                if analyze:
                    self._run.analyze_one(subject)
                    self.seen.add(subject.urn)
            except BaseException as exc:
                self.error = exc

    def cancel(self) -> None:
        """Stop analyzing (the preview failed before the policy stage); returns at once."""
        self._cancelled = True
        self._queue.put(None)

    def close(self) -> _Run:
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self._run


def _analyzer_info(response: Any, project: PackProject) -> AnalyzerInfo:
    policies = []
    for policy in response.policies:
        schema: dict[str, Any] | None = None
        if response.supportsConfig:
            properties = json_format.MessageToDict(policy.configSchema.properties)
            properties["enforcementLevel"] = {"type": "string", "enum": list(LEVELS)}
            schema = {"properties": properties, "required": list(policy.configSchema.required)}
        policies.append(
            PolicyInfo(
                name=policy.name,
                description=policy.description,
                enforcement_level=_PROTO_TO_LEVEL[policy.enforcementLevel],
                severity=_severity(policy.severity),
                policy_type=_POLICY_TYPES.get(policy.policy_type, "unknown"),
                display_name=policy.displayName,
                config_schema=schema,
            )
        )
    initial = {
        name: PolicyConfig(
            _PROTO_TO_LEVEL[value.enforcementLevel],
            json_format.MessageToDict(value.properties) or None,
        )
        for name, value in response.initialConfig.items()
    }
    return AnalyzerInfo(
        name=response.name,
        version=project.version or response.version,
        supports_config=response.supportsConfig,
        policies=sorted(policies, key=lambda p: p.name),
        initial_config=initial,
        display_name=response.displayName,
        description=response.description,
    )


def _severity(number: int) -> str:
    return SEVERITIES[number] if 0 <= number < len(SEVERITIES) else "unspecified"


def _options(subject: _Subject) -> Any:
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=subject.protect,
        customTimeouts=analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts(),
        parent=subject.parent or "",
    )


def _provider(subject: _Subject, by_urn: Mapping[str, _Subject]) -> Any:
    if not subject.provider:
        return None
    provider = by_urn.get(subject.provider.rsplit("::", 1)[0])
    if provider is None:
        return None
    return analyzer_pb2.AnalyzerProviderResource(
        type=provider.type,
        properties=encode_properties(provider.inputs),
        urn=provider.urn,
        name=provider.name,
    )


class _Run:
    """One policy check: the state the protocol calls build up."""

    def __init__(
        self, client: _Client, info: AnalyzerInfo, plan: Plan | None, stack_urn: str = ""
    ) -> None:
        self.client = client
        self.info = info
        self.subjects = _subjects(plan) if plan is not None else []
        self.by_urn = {s.urn: s for s in self.subjects}
        self.stack_urn = plan.stack_urn if plan is not None else stack_urn
        self.diagnostics: list[PolicyDiagnostic] = []
        self.remediations: list[PolicyRemediation] = []
        self.remediated: dict[str, dict[str, Any]] = {}
        """Per URN, the inputs remediations changed (wire form; ``None`` when removed)."""
        self.not_applicable: Counter[str] = Counter()
        self.analyzed = 0

    def analyze_each(self, urns: Iterable[str] | None = None) -> None:
        """``Remediate`` then ``Analyze`` for every resource, or only for those in ``urns``."""
        wanted = None if urns is None else set(urns)
        for subject in self.subjects:
            if wanted is None or subject.urn in wanted:
                self.analyze_one(subject)

    def analyze_one(self, subject: _Subject) -> None:
        """``Remediate`` then ``Analyze`` for one resource (its provider must be known)."""
        self.analyzed += 1
        request = analyzer_pb2.AnalyzeRequest(
            type=subject.type,
            properties=encode_properties(subject.inputs),
            urn=subject.urn,
            name=subject.name,
            options=_options(subject),
            provider=_provider(subject, self.by_urn),
        )
        self._remediate(subject, request)
        response = self.client.call("Analyze", request, what=subject.urn)
        self._count_not_applicable(response.not_applicable)
        for diagnostic in response.diagnostics:
            # The engine reports a resource's violations against the URN it analyzed.
            self.diagnostics.append(self._diagnostic(diagnostic, subject.urn, "analyze"))

    def merge(self, other: _Run) -> None:
        """Take in what another run (another process of the same pack, same configuration)
        reported for the resources it analyzed."""
        self.diagnostics += other.diagnostics
        self.remediations += other.remediations
        self.remediated.update(other.remediated)
        self.not_applicable.update(other.not_applicable)
        self.analyzed += other.analyzed

    def adopt(self, plan: Plan) -> None:
        """Take the complete plan after resources were analyzed one by one as they were
        registered: the stack itself is analyzed, and what each resource's analysis reported
        is put in plan order, so the report is the same as one ``check`` over the plan."""
        self.subjects = _subjects(plan)
        self.by_urn = {s.urn: s for s in self.subjects}
        self.stack_urn = plan.stack_urn
        self.analyze_one(self.subjects[0])
        order = {s.urn: index for index, s in enumerate(self.subjects)}
        self.diagnostics.sort(key=lambda d: order.get(d.urn, len(order)))
        self.remediations.sort(key=lambda r: order.get(r.urn, len(order)))

    def _remediate(self, subject: _Subject, request: Any) -> None:
        response = self.client.call("Remediate", request, what=subject.urn, optional=True)
        if response is None:
            return
        self._count_not_applicable(response.not_applicable)
        for remediation in response.remediations:
            if remediation.diagnostic:
                self.diagnostics.append(
                    PolicyDiagnostic(
                        policy_name=remediation.policyName,
                        policy_pack_name=remediation.policyPackName,
                        policy_pack_version=self._version(remediation.policyPackVersion),
                        enforcement_level="advisory",
                        severity="unspecified",
                        urn=subject.urn,
                        resource_type=subject.type,
                        resource_name=subject.name,
                        description=remediation.description,
                        message=remediation.diagnostic,
                        source="remediate",
                    )
                )
            elif remediation.HasField("properties"):
                before = json_format.MessageToDict(request.properties)
                request.properties.CopyFrom(remediation.properties)
                properties = json_format.MessageToDict(remediation.properties)
                changed = sorted(
                    key
                    for key in set(before) | set(properties)
                    if before.get(key) != properties.get(key)
                )
                earlier = self.remediated.get(subject.urn, {})
                self.remediated[subject.urn] = {
                    **earlier,
                    **{key: properties.get(key) for key in changed},
                }
                self.remediations.append(
                    PolicyRemediation(
                        policy_name=remediation.policyName,
                        policy_pack_name=remediation.policyPackName,
                        policy_pack_version=self._version(remediation.policyPackVersion),
                        urn=subject.urn,
                        resource_type=subject.type,
                        resource_name=subject.name,
                        description=remediation.description,
                        properties=properties,
                        changed_keys=changed,
                    )
                )

    def analyze_stack(self) -> None:
        resources = []
        for subject in self.subjects:
            outputs = encode_value(subject.outputs)
            # The provider would have been given the remediated inputs: they win over the
            # outputs the mock computed from the original ones.
            for key, value in self.remediated.get(subject.urn, {}).items():
                if value is None:
                    outputs.pop(key, None)
                else:
                    outputs[key] = value
            properties = _plain_struct(outputs)
            resources.append(
                analyzer_pb2.AnalyzerResource(
                    type=subject.type,
                    properties=properties,
                    urn=subject.urn,
                    name=subject.name,
                    options=_options(subject),
                    provider=_provider(subject, self.by_urn),
                    parent=subject.parent or "",
                    dependencies=subject.dependencies,
                    propertyDependencies={
                        key: analyzer_pb2.AnalyzerPropertyDependencies(urns=urns)
                        for key, urns in subject.property_dependencies.items()
                        if urns
                    },
                )
            )
        request = analyzer_pb2.AnalyzeStackRequest(resources=resources)
        response = self.client.call("AnalyzeStack", request, optional=True)
        if response is None:
            return
        self._count_not_applicable(response.not_applicable)
        for diagnostic in response.diagnostics:
            # A stack policy's violation without a URN belongs to the stack.
            urn = diagnostic.urn or self.stack_urn
            self.diagnostics.append(self._diagnostic(diagnostic, urn, "analyzeStack"))

    def _diagnostic(self, diagnostic: Any, urn: str, source: str) -> PolicyDiagnostic:
        level = _PROTO_TO_LEVEL.get(diagnostic.enforcementLevel, "advisory")
        if level == "remediate":
            level = "mandatory"  # a remediation ran and the violation is still there
        subject = self.by_urn.get(urn)
        return PolicyDiagnostic(
            policy_name=diagnostic.policyName,
            policy_pack_name=diagnostic.policyPackName,
            policy_pack_version=self._version(diagnostic.policyPackVersion),
            enforcement_level=level,
            severity=_severity(diagnostic.severity),
            urn=urn,
            resource_type=subject.type if subject else urn_type(urn),
            resource_name=subject.name if subject else urn_name(urn),
            description=diagnostic.description,
            message=diagnostic.message,
            source=source,
        )

    def _version(self, reported: str) -> str:
        # The version in PulumiPolicy.yaml, when set, wins over what the pack reports.
        return self.info.version or reported

    def _count_not_applicable(self, entries: Iterable[Any]) -> None:
        for entry in entries:
            self.not_applicable[entry.policy_name] += 1


class PolicySession:
    """A started, configured pack kept open for many requests: one process, its start-up calls
    (``Handshake``, ``ConfigureStack``, ``GetAnalyzerInfo``, ``Configure``) made once, then
    ``check``, ``analyze`` and ``analyze_stack`` as often as needed, over the captured plan or
    any variant of it (tests send many). A context manager that always stops the process.

    The pack is started for one project and stack (they reach it through its environment), so
    every plan sent must be of that stack. ``run_policy_check`` is one session with one
    ``check``. Raises as ``run_policy_check`` does: ``PolicyInputError`` for a missing pack or a
    bad ``PulumiPolicy.yaml`` or policy config (before the process starts, except a config the
    pack's schema rejects), ``PolicyPackError`` when the pack process fails; the process is
    stopped in every case.
    """

    def __init__(
        self,
        pack_dir: Path,
        *,
        project: str,
        stack: str,
        config_file: Path | None = None,
        stack_config: Mapping[str, str] | None = None,
        secret_keys: Sequence[str] = (),
        organization: str = DEFAULT_ORGANIZATION,
        pack_label: str | None = None,
        start_timeout: float = 60.0,
        rpc_timeout: float = 300.0,
    ) -> None:
        self.pack_dir = pack_dir
        self.project = project
        self.stack = stack
        self.config_file = config_file
        self.stack_config = dict(stack_config or {})
        self.secret_keys = list(secret_keys)
        self.organization = organization
        self.pack_label = pack_label if pack_label is not None else str(pack_dir)
        self.start_timeout = start_timeout
        self.rpc_timeout = rpc_timeout
        self.pack_project = load_pack_project(pack_dir)
        self.given = load_policy_config(config_file) if config_file is not None else {}
        self.process: PolicyPackProcess | None = None
        self.config: dict[str, PolicyConfig] = {}
        """The configuration sent with ``Configure`` (empty when the pack takes none)."""
        self._client: _Client | None = None
        self._info: AnalyzerInfo | None = None

    def __enter__(self) -> PolicySession:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the pack and configure it as the engine does; stops it again on any failure."""
        if self.process is not None:
            raise RuntimeError("the policy session was already started")
        env = pack_environment(
            project=self.project,
            stack=self.stack,
            organization=self.organization,
            config=self.stack_config,
        )
        process = PolicyPackProcess(self.pack_project, env, start_timeout=self.start_timeout)
        self.process = process
        try:
            process.start()
            client = _Client(process, self.rpc_timeout)
            client.call(
                "Handshake",
                analyzer_pb2.AnalyzerHandshakeRequest(
                    engine_address=ENGINE_ADDRESS,
                    root_directory=str(self.pack_dir),
                    program_directory=str(self.pack_dir),
                ),
                optional=True,
            )
            client.call(
                "ConfigureStack",
                analyzer_pb2.AnalyzerStackConfigureRequest(
                    stack=self.stack,
                    project=self.project,
                    organization=self.organization,
                    dry_run=True,
                    config=self.stack_config,
                    config_secret_keys=self.secret_keys,
                ),
                optional=True,
            )
            info = _analyzer_info(
                client.call("GetAnalyzerInfo", empty_pb2.Empty()), self.pack_project
            )
            self.config = _configure(client, info, self.given, self.config_file)
        except BaseException:
            process.stop()
            raise
        self._client = client
        self._info = info

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self._client = None

    @property
    def info(self) -> AnalyzerInfo:
        """What ``GetAnalyzerInfo`` returned (the session must be started)."""
        if self._info is None:
            raise RuntimeError("the policy session is not started")
        return self._info

    @property
    def output(self) -> list[str]:
        """What the pack process wrote besides its port (complete once it is stopped)."""
        return self.process.output if self.process is not None else []

    @property
    def warnings(self) -> list[str]:
        known = {p.name for p in self.info.policies}
        return [
            f"the policy config names {name!r}, which is no policy of {self.info.name}"
            for name in sorted(self.given)
            if name != "all" and name not in known
        ]

    def check(self, plan: Plan, *, analyze: Iterable[str] | None = None) -> PolicyReport:
        """One policy check over ``plan``: ``Remediate`` and ``Analyze`` for every resource (or
        only the URNs in ``analyze``; the stack's own URN names the stack resource), then
        ``AnalyzeStack`` with every resource of the plan."""
        run = self._run(plan)
        run.analyze_each(analyze)
        run.analyze_stack()
        return self._report(plan, run)

    def stream(self, project: str, stack: str, stack_urn: str) -> StreamingCheck:
        """A check that analyzes each resource as the program registers it, as the engine
        does during a deployment (``StreamingCheck``)."""
        if self._client is None or self._info is None:
            raise RuntimeError("the policy session is not started")
        if (project, stack) != (self.project, self.stack):
            raise ValueError(f"the pack was started for {self.project}/{self.stack}")
        return StreamingCheck(self, _Run(self._client, self._info, None, stack_urn))

    def finish(
        self, plan: Plan, streaming: StreamingCheck, helpers: Sequence[StreamingCheck] = ()
    ) -> PolicyReport:
        """The report of a streamed check once the program is done: every resource of
        ``plan`` must have been analyzed by this session or one of its ``helpers`` (other
        processes of the same pack and configuration); then the stack is analyzed here and
        ``AnalyzeStack`` sent here, with every resource."""
        run = streaming.close()
        seen = set(streaming.seen)
        for helper in helpers:
            run.merge(helper.close())
            seen |= helper.seen
        missing = [r.urn for r in plan.resources if r.urn not in seen]
        if missing:
            raise PolicyPackError(
                [f"error: the policy pack analyzed {len(plan.resources) - len(missing)} of "
                 f"{len(plan.resources)} resources; not analyzed: {missing[0]} and "
                 f"{len(missing) - 1} more"]
            )  # fmt: skip
        run.adopt(plan)
        run.analyze_stack()
        return self._report(plan, run)

    def analyze(self, plan: Plan, urns: Iterable[str] | None = None) -> list[PolicyDiagnostic]:
        """``Remediate`` and ``Analyze`` for the resources of ``plan`` in ``urns`` (all when
        ``None``); what the pack reported."""
        run = self._run(plan)
        run.analyze_each(urns)
        return run.diagnostics

    def analyze_stack(self, plan: Plan) -> list[PolicyDiagnostic]:
        """``AnalyzeStack`` with every resource of ``plan``, as captured (no remediation of an
        earlier ``analyze`` is applied: ``check`` does both in one run)."""
        run = self._run(plan)
        run.analyze_stack()
        return run.diagnostics

    def _run(self, plan: Plan) -> _Run:
        if self._client is None or self._info is None:
            raise RuntimeError("the policy session is not started")
        if (plan.project, plan.stack) != (self.project, self.stack):
            raise ValueError(
                f"the pack was started for {self.project}/{self.stack}, "
                f"not {plan.project}/{plan.stack}"
            )
        return _Run(self._client, self._info, plan)

    def _report(self, plan: Plan, run: _Run) -> PolicyReport:
        return PolicyReport(
            stack=plan.stack,
            project=plan.project,
            pack=self.info,
            pack_label=self.pack_label,
            config_file=str(self.config_file) if self.config_file is not None else None,
            config=self.config,
            diagnostics=run.diagnostics,
            remediations=run.remediations,
            resources_analyzed=run.analyzed,
            not_applicable=dict(run.not_applicable),
            warnings=self.warnings,
            pack_output=list(self.output),
        )


def run_policy_check(
    plan: Plan,
    pack_dir: Path,
    *,
    config_file: Path | None = None,
    stack_config: Mapping[str, str] | None = None,
    secret_keys: Sequence[str] = (),
    organization: str = DEFAULT_ORGANIZATION,
    pack_label: str | None = None,
    start_timeout: float = 60.0,
    rpc_timeout: float = 300.0,
) -> PolicyReport:
    """Run the pack in ``pack_dir`` over ``plan`` as ``pulumi preview --policy-pack pack_dir
    [--policy-pack-config config_file]`` would, and return what it reported.

    Raises ``PolicyInputError`` for a missing pack or a bad ``PulumiPolicy.yaml`` or policy config,
    ``PolicyPackError`` when the pack process fails; the process is stopped in every case.
    """
    session = PolicySession(
        pack_dir,
        project=plan.project,
        stack=plan.stack,
        config_file=config_file,
        stack_config=stack_config,
        secret_keys=secret_keys,
        organization=organization,
        pack_label=pack_label,
        start_timeout=start_timeout,
        rpc_timeout=rpc_timeout,
    )
    with session:
        report = session.check(plan)
    report.pack_output = session.output  # complete once the process is stopped
    return report


def _configure(
    client: _Client,
    info: AnalyzerInfo,
    given: Mapping[str, PolicyConfig],
    config_file: Path | None,
) -> dict[str, PolicyConfig]:
    if not info.supports_config:
        if config_file is not None:
            raise PolicyInputError(
                [f"error: policy pack {info.name} does not support config ({config_file})"]
            )
        return {}
    effective, errors = reconcile_policy_config(info, given)
    if errors:
        raise PolicyInputError(
            [f"validating policy config: {info.name} {info.version}  {error}" for error in errors]
        )
    invalid = [
        f"error: policy config: {name}: invalid enforcement level {config.enforcement_level!r}"
        for name, config in sorted(effective.items())
        if config.enforcement_level not in LEVELS
    ]
    if invalid:
        raise PolicyInputError(invalid)
    if effective:
        client.call(
            "Configure",
            analyzer_pb2.ConfigureAnalyzerRequest(
                policyConfig={
                    name: analyzer_pb2.PolicyConfig(
                        enforcementLevel=_LEVEL_TO_PROTO[str(config.enforcement_level)],
                        properties=_plain_struct(config.properties or {}),
                    )
                    for name, config in effective.items()
                }
            ),
        )
    return effective


__all__ = [
    "AnalyzerInfo",
    "PackProject",
    "PolicyCheckError",
    "PolicyConfig",
    "PolicyDiagnostic",
    "PolicyInfo",
    "PolicyInputError",
    "PolicyPackError",
    "PolicyPackProcess",
    "PolicyReport",
    "PolicySession",
    "encode_value",
    "load_pack_project",
    "load_policy_config",
    "pack_environment",
    "reconcile_policy_config",
    "run_policy_check",
]
