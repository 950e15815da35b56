"""The policy pack as its own process, started the way the Pulumi CLI (3.272) starts a Python
pack, and a client that calls it.

Why a process and not an import: the pack must run as ``pulumi preview --policy-pack DIR``
runs it, so the offline check sees what the real one sees (its own interpreter, environment and
gRPC server). What the CLI does, and what this module reproduces:

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
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import yaml
from pulumi.runtime.proto import analyzer_pb2_grpc

from tools.analyzer.errors import PolicyInputError, PolicyPackError

PACK_MODULE = "pulumi.policy"
ENGINE_ADDRESS = "127.0.0.1:0"
"""Passed where the CLI passes its engine's address; ``pulumi.policy`` parses and ignores it."""
MAX_MESSAGE_SIZE = 400 * 1024 * 1024
DEFAULT_ORGANIZATION = "organization"
"""The organization of a DIY backend's stacks (and what the SDK assumes when none is set)."""


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


# --- calling it ----------------------------------------------------------------------------


class PackClient:
    """The Analyzer service of a started pack process. A failed call ends the check: the
    process is stopped and the error carries all it wrote on stderr."""

    def __init__(self, process: PolicyPackProcess, timeout: float) -> None:
        self.process = process
        self.stub = analyzer_pb2_grpc.AnalyzerStub(process.channel)
        self.timeout = timeout

    def call(self, method: str, request: Any, *, what: str = "", optional: bool = False) -> Any:
        """``method`` with ``request``; ``None`` when ``optional`` and the pack does not
        implement it."""
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
