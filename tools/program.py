"""The Pulumi program of a stack run under the mock runtime, everything it registers captured
as a ``Plan``: the preview's ``program`` stage, and how tests build the plan of a whole stack
(``run_program``) or of one component with chosen arguments (``capture``).

A failed program, or configuration the settings refuse, is a ``StageError`` with the exit code
and the lines the preview prints (one per configuration problem, naming the key).
"""

from __future__ import annotations

import contextvars
import runpy
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import pulumi
from pulumi.runtime import config as runtime_config
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime import stack as runtime_stack
from pulumi.runtime.sync_await import _sync_await

from components.settings import PROJECT, SettingsError, SettingsProblem
from tools.engine.schema import SchemaCache
from tools.mocks import CapturedResource, CapturingMonitor, RealisticMocks
from tools.plan import Plan
from tools.project import StackConfig

REPO_ROOT = Path(__file__).resolve().parent.parent

EXIT_PROGRAM_FAILED = 1
EXIT_CONFIG = 2
"""Bad input (configuration) stops the preview with 2, a failed program with 1."""

Listener = Callable[[CapturedResource], None]
"""Called with each resource as the program registers it (the policy pack streams them)."""


class StageError(Exception):
    """Stops the pipeline with an exit code and the lines to print on stderr."""

    def __init__(self, exit_code: int, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.exit_code = exit_code
        self.lines = list(lines)


def config_error(stack: str, problems: Sequence[SettingsProblem]) -> StageError:
    """One line per problem, each naming the key; no traceback."""
    return StageError(
        EXIT_CONFIG,
        [f"error: stack {stack!r}: {len(problems)} configuration problem(s):"]
        + [f"  - {problem}" for problem in problems],
    )


def run_program(
    project_dir: Path,
    config: StackConfig,
    schemas: SchemaCache | None = None,
    listener: Listener | None = None,
) -> Plan:
    """Run ``__main__.py`` for the stack under the mock runtime and return the captured plan."""
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    program = str(project_dir / "__main__.py")
    return capture(config, lambda: _run_main(program), schemas, listener)


def capture(
    config: StackConfig,
    program: Callable[[], None],
    schemas: SchemaCache | None = None,
    listener: Listener | None = None,
) -> Plan:
    """Run ``program`` as a Pulumi program of the stack under the mock runtime, capturing
    everything it registers (tests use this to build one component with chosen arguments).

    Each run happens in a fresh ``contextvars`` context, so the Pulumi runtime state of one run
    (root stack, settings, config) never leaks into the next one in the same process.
    """
    return contextvars.Context().run(
        _capture, config, program, schemas or SchemaCache(None), listener
    )


def _capture(
    config: StackConfig,
    program: Callable[[], None],
    schemas: SchemaCache,
    listener: Listener | None,
) -> Plan:
    mocks = RealisticMocks(config.stack, schemas=schemas)
    monitor = CapturingMonitor(mocks, listener)
    runtime_config.set_all_config(dict(config.values), list(config.secret_keys))
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=config.stack, preview=True, monitor=monitor
    )
    # set_mocks registered a root stack and closed its outputs; run the program in a new root
    # stack, as the Python language host does, so its exports are registered as stack outputs.
    runtime_settings.ROOT.set(None)
    sites: dict[tuple[str, str], list[str]] = {}

    def recorded() -> None:
        runtime_stack.register_stack_transformation(_site_recorder(sites))
        program()

    try:
        _sync_await(runtime_stack.run_in_stack(recorded))
    except SettingsError as exc:
        raise config_error(exc.stack, exc.problems) from None
    except Exception:
        raise StageError(
            EXIT_PROGRAM_FAILED,
            ["error: the program failed under the mock runtime:", traceback.format_exc()],
        ) from None
    if monitor.stack_urn is None:
        raise StageError(EXIT_PROGRAM_FAILED, ["error: the program registered no stack"])
    return Plan(
        PROJECT,
        config.stack,
        monitor.stack_urn,
        monitor.captured,
        monitor.stack_outputs,
        config.placeholders,
        sites=sites,
    )


_TOOLS_DIR = str(Path(__file__).resolve().parent)


def _site_recorder(
    sites: dict[tuple[str, str], list[str]],
) -> Callable[[pulumi.ResourceTransformationArgs], None]:
    """A stack transformation that records where each resource is constructed (the first
    frame outside the SDKs and these tools), so a duplicate URN can name both places."""

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        frame = sys._getframe(1)
        while frame is not None:
            path = frame.f_code.co_filename
            if "site-packages" not in path and not path.startswith(_TOOLS_DIR):
                break
            frame = frame.f_back  # type: ignore[assignment]
        if frame is not None:
            where = f"{_relative(frame.f_code.co_filename)}:{frame.f_lineno}"
            sites.setdefault((args.type_, args.name), []).append(where)

    return record


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return path


def _run_main(path: str) -> None:
    runpy.run_path(path, run_name="__main__")
