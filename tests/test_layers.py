"""The import rule between layers, read from the source (every import, at any depth).

``components`` is layered, lowest first: settings, lib, aws, eks, platform, app, backups,
monitoring; ``__main__`` composes them all. A module imports only from lower layers and its
own; ``tools`` imports only ``components.settings``, the monitoring renderers and ``tools``;
``policies`` imports nothing of ``components`` or ``tools`` (the pack runs in its own process
and is installed alone);
nothing imports ``tests`` or ``bench``; no module imports another module's private
(underscored) names; ``components`` imports nothing dynamically (``importlib``), and only
``components.settings`` reads Pulumi configuration. A violation is reported with the file, the
line and what it does.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping

from tools.preview import REPO_ROOT

LAYERS = ("settings", "lib", "aws", "eks", "platform", "app", "backups", "monitoring")
"""The layers of ``components``, lowest first (backups and monitoring are the next packages)."""
NOT_IMPORTABLE = ("tests", "bench")
"""First-party code the program, the tools and the pack never import."""
TOOLS_MAY_IMPORT = (
    "components.settings",
    "components.monitoring.render",
    "components.monitoring.alertmanager",
)
"""What of ``components`` the tools may import: the settings, and the pure renderers of the
monitoring files (no resources; the preview's ``monitoring`` stage renders from settings, as
the files hold secrets the plan only has masked)."""
CONFIG_READERS = frozenset({"Config", "get_config", "get_config_env", "get_stack", "get_project"})
"""What reads the stack's configuration or identity from the Pulumi SDK (settings does)."""
CHECKED = ("components", "tools", "policies")
"""Top-level packages (and ``__main__.py``) whose imports the rule covers."""


def _module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: str, source: str, known: set[str]) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, imported module, names taken from it) for every import in ``source``; a name
    that is itself a module (``from components.lib.kube import pods``) counts as that module."""
    package = _module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = tuple(alias.name for alias in node.names)
            modules = [name for name in names if f"{base}.{name}" in known]
            for name in modules:
                yield node.lineno, f"{base}.{name}", ()
            if len(modules) < len(names):
                yield node.lineno, base, tuple(n for n in names if n not in modules)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "components" or len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def import_problems(files: Mapping[str, str]) -> list[str]:
    """Every import in ``files`` (repository path -> source) that breaks the rule."""
    known = {_module_name(path) for path in files}
    problems: list[str] = []
    for path, source in sorted(files.items()):
        importer = _module_name(path)
        top = importer.split(".")[0]
        own_layer = _layer(importer)
        problems.extend(_source_problems(path, importer, source))
        for line, module, names in _imports(path, source, known):
            if module.split(".")[0] not in (*CHECKED, "__main__", *NOT_IMPORTABLE):
                continue  # the standard library and third-party packages
            where = f"{path}:{line} imports {module}"
            reason = _rule(importer, top, own_layer, module)
            if reason:
                problems.append(f"{where}: {reason}")
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if private and module != importer:
                problems.append(f"{where}: takes private name(s) {', '.join(private)}")
    return problems


def _source_problems(path: str, importer: str, source: str) -> list[str]:
    """Dynamic imports and configuration reads in ``components`` (outside settings)."""
    if not importer.startswith("components.") or importer.startswith("components.settings"):
        return []
    problems: list[str] = []
    tree = ast.parse(source, filename=path)
    sdk_modules, sdk_names = _pulumi_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = node.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            # the SDK's readers only (botocore's Config is no configuration read), aliases too
            reader = (
                (name if _leftmost(called) in sdk_modules | set(sdk_names) else "")
                if isinstance(called, ast.Attribute)
                else sdk_names.get(name, "")
            )
            if name in ("import_module", "__import__"):
                problems.append(
                    f"{path}:{node.lineno} imports dynamically: the layer rule cannot see it"
                )
            elif reader in CONFIG_READERS:
                problems.append(
                    f"{path}:{node.lineno} calls {reader}: only components.settings reads the "
                    "stack's configuration"
                )
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pulumi.runtime"):
            problems.append(
                f"{path}:{node.lineno} imports {node.module}: only components.settings reaches "
                "into the runtime (configuration)"
            )
    return problems


def _pulumi_names(tree: ast.AST) -> tuple[set[str], dict[str, str]]:
    """The names a module binds to the Pulumi SDK: modules (``import pulumi``, ``import
    pulumi.runtime as rt``), and names taken from it (``from pulumi import Config as C``: ``C``
    is ``Config``)."""
    modules: set[str] = set()
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pulumi":
                    modules.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pulumi":
            for alias in node.names:
                names[alias.asname or alias.name] = alias.name
    return modules, names


def _leftmost(node: ast.expr) -> str:
    """``pulumi`` for ``pulumi.config.Config``: the name an attribute chain starts from."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else ""


def _rule(importer: str, top: str, own_layer: int | None, module: str) -> str | None:
    """Why ``importer`` may not import ``module`` (None when it may)."""
    target_top = module.split(".", maxsplit=1)[0]
    if target_top in NOT_IMPORTABLE:
        return f"{target_top} is not part of the program, the tools or the policy pack"
    if importer == "__main__":
        return None if target_top == "components" else "the program composes components only"
    if top == "policies":
        if target_top in ("components", "tools", "__main__"):
            return "the policy pack imports nothing of components or tools (it is installed alone)"
        return None
    if top == "tools":
        if target_top == "components" and not module.startswith(TOOLS_MAY_IMPORT):
            return "tools import only components.settings and the renderers (and tools)"
        if target_top in ("policies", "__main__"):
            return "tools import only components.settings and the renderers (and tools)"
        return None
    # components
    if target_top != "components":
        return f"components import only components (not {target_top})"
    target_layer = _layer(module)
    if own_layer is None or target_layer is None:
        if module == "components":
            return None
        return f"{module} is outside the layers {', '.join(LAYERS)}"
    if target_layer > own_layer:
        return (
            f"layer {LAYERS[own_layer]} may import only {', '.join(LAYERS[: own_layer + 1])}, "
            f"not {LAYERS[target_layer]}"
        )
    return None


def repository_sources() -> dict[str, str]:
    files = {"__main__.py": (REPO_ROOT / "__main__.py").read_text()}
    for top in CHECKED:
        for path in sorted((REPO_ROOT / top).rglob("*.py")):
            relative = path.relative_to(REPO_ROOT)
            if "node_modules" in relative.parts:
                continue
            files[relative.as_posix()] = path.read_text()
    return files


def test_every_import_follows_the_layer_rule() -> None:
    files = repository_sources()
    layers_present = {_layer(_module_name(path)) for path in files} - {None}
    assert len(layers_present) >= 6, "the checked tree has the layers"
    assert sum(path.startswith("tools/") for path in files) >= 10
    assert sum(path.startswith("policies/") for path in files) >= 5
    problems = import_problems(files)
    assert problems == [], "\n".join(problems)


def test_every_component_module_sits_in_a_layer() -> None:
    outside = [
        path
        for path in repository_sources()
        if path.startswith("components/")
        and path != "components/__init__.py"
        and _layer(_module_name(path)) is None
    ]
    assert outside == []


SEEDED = {
    "components/__init__.py": "",
    "components/lib/__init__.py": "",
    "components/lib/naming.py": "from components.settings import StackSettings\n",
    "components/lib/kube/pods.py": (
        "import json\n\ndef f():\n    from components.eks.nodes import SYSTEM_TAINTS\n"
    ),
    "components/settings/__init__.py": "from components.lib.naming import Naming\n",
    "components/eks/__init__.py": "",
    "components/eks/nodes.py": "from components.lib.naming import Naming\n",
    "components/app/workloads.py": (
        "from components.aws.storage import _Bucket\nfrom components.eks import nodes\n"
    ),
    "components/aws/storage.py": "from . import network\nfrom ..platform.vpa import CHART\n",
    "components/aws/network.py": "",
    "components/platform/vpa.py": "",
    "tools/plan.py": (
        "from components.aws.network import Network\nfrom components.settings import X\n"
    ),
    "policies/rules/common.py": "from components.lib.kube import pods\n",
    "__main__.py": "from tools.plan import Plan\nfrom components.app.workloads import Workloads\n",
    "components/app/ingress.py": (
        "import importlib\nimport pulumi\nfrom tests import STACKS\n"
        "W = importlib.import_module('components.app.workloads')\n"
        "HOST = pulumi.Config('exposcholar').get('host')\n"
    ),
    "components/settings/sdk.py": "import pulumi\nX = pulumi.Config('exposcholar')\n",
}


def test_the_rule_names_each_seeded_violation() -> None:
    problems = import_problems(SEEDED)
    expected = [
        "__main__.py:1 imports tools.plan: the program composes components only",
        "components/app/workloads.py:1 imports components.aws.storage: takes private name(s) "
        "_Bucket",
        "components/aws/storage.py:2 imports components.platform.vpa: layer aws may import "
        "only settings, lib, aws, not platform",
        "components/lib/kube/pods.py:4 imports components.eks.nodes: layer lib may import only "
        "settings, lib, not eks",
        "components/settings/__init__.py:1 imports components.lib.naming: layer settings may "
        "import only settings, not lib",
        "policies/rules/common.py:1 imports components.lib.kube.pods: the policy pack imports "
        "nothing of components or tools (it is installed alone)",
        "tools/plan.py:1 imports components.aws.network: tools import only "
        "components.settings and the renderers (and tools)",
        "components/app/ingress.py:3 imports tests: tests is not part of the program, the "
        "tools or the policy pack",
        "components/app/ingress.py:4 imports dynamically: the layer rule cannot see it",
        "components/app/ingress.py:5 calls Config: only components.settings reads the stack's "
        "configuration",
    ]
    for line in expected:
        assert line in problems, (line, problems)
    # what is allowed stays allowed: lower layers, the own layer, relative imports within it
    allowed = ("components/lib/naming.py", "components/eks/nodes.py", "components/aws/storage.py:1")
    assert not [p for p in problems if p.startswith(allowed)], problems
    assert len(problems) == len(expected), problems


def test_another_librarys_config_is_no_configuration_read() -> None:
    """Only the Pulumi SDK's readers count: a client library's ``Config`` (botocore's) is not
    one, whatever it is called; the SDK's is, however it is imported."""
    clean = {
        "components/backups/client.py": (
            "from botocore.config import Config\nimport botocore.config\n"
            "A = Config(retries={'max_attempts': 3})\nB = botocore.config.Config()\n"
        ),
    }
    assert import_problems(clean) == []
    reads = {
        "components/backups/reads.py": (
            "from pulumi import Config as C\nimport pulumi as p\nA = C()\nB = p.config.Config()\n"
        ),
    }
    assert [problem.split(" calls ")[0] for problem in import_problems(reads)] == [
        "components/backups/reads.py:3",
        "components/backups/reads.py:4",
    ]


def test_a_seeded_violation_in_the_repository_is_named() -> None:
    files = repository_sources()
    files["components/lib/naming.py"] += "\nfrom components.aws.network import Network\n"
    (problem,) = import_problems(files)
    assert problem.startswith("components/lib/naming.py:")
    assert "imports components.aws.network: layer lib may import only settings, lib" in problem
