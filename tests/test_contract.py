"""One component contract, checked over every component of the program (``lib.component``).

Statically, per class: it subclasses ``Component`` and lives in a component layer (not settings
or lib); ``TYPE`` is ``exposcholar:<group>:<Class>``; ``__init__(name, args, opts)`` takes a
frozen Args dataclass with a docstring on every field and no second ordering mechanism (no
field holds resources to wait for); its declared outputs are snake_case and documented; its
module creates children only through ``child_opts()``. At run time, for each stack: every
instance registers exactly its declared outputs, once, exposes nothing else and no child
resource (attributes and properties); and every resource waits for whatever its enclosing
components wait for. Each check is also shown failing on a seeded violation.
"""

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import importlib
import inspect
import pkgutil
import re
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import pulumi
import pulumi_aws
import pytest
from pulumi_aws import s3

import components
from components.lib.component import TOKEN_GROUPS, Component
from tests import STACKS
from tools.plan import Plan
from tools.preview import REPO_ROOT
from tools.program import capture, run_program
from tools.project import load_stack_config

PULUMI_ATTRIBUTES = frozenset({"urn", "id"})
"""Set on every resource by the SDK itself."""
NOT_COMPONENT_LAYERS = ("settings", "lib")
"""Layers that hold no components of their own."""
SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")


def component_classes() -> list[type[pulumi.ComponentResource]]:
    """Every ComponentResource class defined in ``components``."""
    found: dict[str, type[pulumi.ComponentResource]] = {}
    for module_info in pkgutil.walk_packages(components.__path__, "components."):
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, pulumi.ComponentResource)
                and value is not Component
                and value.__module__ == module.__name__
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[key] for key in sorted(found)]


def _documented(cls: type) -> tuple[set[str], set[str]]:
    """(annotated names, annotated names followed by a docstring) in ``cls``'s own body."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):  # made at run time (a seeded class): no body of its own
        return set(), set()
    body = tree.body[0].body  # type: ignore[attr-defined]
    annotated: set[str] = set()
    documented: set[str] = set()
    for index, node in enumerate(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            annotated.add(node.target.id)
            following = body[index + 1] if index + 1 < len(body) else None
            if (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                documented.add(node.target.id)
    return annotated, documented


def class_problems(cls: type[pulumi.ComponentResource]) -> list[str]:
    """What in ``cls`` breaks the static part of the contract (empty when it holds)."""
    name = cls.__qualname__
    if not issubclass(cls, Component):
        return [f"{name} is a ComponentResource but not a components.lib.component.Component"]
    problems: list[str] = []
    layer = cls.__module__.split(".")[1:2]
    if cls.__module__.startswith("components.") and layer[0] in NOT_COMPONENT_LAYERS:
        problems.append(f"{name} is a component in components.{layer[0]}, which holds none")
    token = getattr(cls, "TYPE", None)
    groups = "|".join(TOKEN_GROUPS)
    if not isinstance(token, str) or not re.fullmatch(rf"exposcholar:({groups}):{name}", token):
        problems.append(f"{name}.TYPE is {token!r}; expected 'exposcholar:<group>:{name}'")
    parameters = list(inspect.signature(cls.__init__).parameters)
    if parameters != ["self", "name", "args", "opts"]:
        problems.append(f"{name}.__init__ takes {parameters[1:]}; expected (name, args, opts)")
        return problems
    args_type = get_type_hints(cls.__init__)["args"]
    params = getattr(args_type, "__dataclass_params__", None)
    if params is None or not params.frozen:
        problems.append(f"{name}: its args type {args_type.__name__} is not a frozen dataclass")
        return problems
    _, documented = _documented(args_type)
    hints = _field_types(args_type)
    for field in dataclasses.fields(args_type):
        if field.name not in documented:
            problems.append(f"{args_type.__name__}.{field.name} has no docstring")
        if (
            field.name == "depends_on"
            or field.name.endswith("_ready")
            or _holds_resources(hints[field.name])
        ):
            problems.append(
                f"{args_type.__name__}.{field.name}: ordering is depends_on on the component, "
                "not an argument"
            )
    _, documented_outputs = _documented(cls)
    for output in cls.declared_outputs():
        if not SNAKE.match(output):
            problems.append(f"{name}.{output}: outputs are snake_case")
        if output not in documented_outputs and output in inspect.get_annotations(cls):
            problems.append(f"{name}.{output}: output has no docstring")
    return problems


def _field_types(args_type: type) -> dict[str, object]:
    """Each field's annotation, evaluated where the class is defined (``get_type_hints`` would
    also resolve the forward references inside ``pulumi.Input``, which it cannot)."""
    namespace = vars(importlib.import_module(args_type.__module__))
    return {
        field.name: eval(field.type, namespace) if isinstance(field.type, str) else field.type  # noqa: S307
        for field in dataclasses.fields(args_type)
    }


def _holds_resources(annotation: object) -> bool:
    """Whether a type mentions a resource other than a provider (which is not ordering)."""
    if inspect.isclass(annotation):
        return issubclass(annotation, pulumi.Resource) and not issubclass(
            annotation, pulumi.ProviderResource
        )
    return any(_holds_resources(arg) for arg in get_args(annotation))


def child_opts_problems(path: str, source: str) -> list[str]:
    """Children built with their own ``ResourceOptions(parent=...)`` skip ``child_opts()``,
    and so what the component waits for."""
    return [
        f"{path}:{node.lineno} builds ResourceOptions(parent=...): use child_opts()"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", "")) == "ResourceOptions"
        and any(keyword.arg == "parent" for keyword in node.keywords)
    ]


def _resources_in(value: object, path: str) -> Iterator[str]:
    if isinstance(value, pulumi.Resource):
        yield path
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _resources_in(getattr(value, field.name), f"{path}.{field.name}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _resources_in(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _resources_in(item, f"{path}[{index}]")


def instance_problems(component: Component, registrations: list[Mapping[str, Any]]) -> list[str]:
    """What one constructed component breaks: exact registration, exposure."""
    name = f"{type(component).__qualname__} {component._name!r}"
    declared = set(component.declared_outputs())
    if len(registrations) != 1:
        return [f"{name} registered its outputs {len(registrations)} times (expected once)"]
    problems: list[str] = []
    registered = set(registrations[0])
    if registered != declared:
        problems.append(
            f"{name} registered {sorted(registered)}; declared outputs are {sorted(declared)}"
        )
    public = {key for key in vars(component) if not key.startswith("_")} - PULUMI_ATTRIBUTES
    if undeclared := public - declared:
        problems.append(f"{name} exposes undeclared attributes {sorted(undeclared)}")
    properties = [
        key
        for key, value in inspect.getmembers(type(component))
        if isinstance(value, property) and not key.startswith("_")
    ]
    for key in properties:
        for path in _resources_in(getattr(component, key), key):
            problems.append(f"{name} exposes a child resource at {path} (a property)")
    for output in sorted(declared):
        if not hasattr(component, output):
            problems.append(f"{name} declares {output} but never sets it")
            continue
        value = getattr(component, output)
        for path in _resources_in(value, output):
            problems.append(f"{name} exposes a child resource at {path}")
        declared_type = _output_types(type(component))[output]
        if not _conforms(value, declared_type):
            problems.append(
                f"{name}.{output} is a {type(value).__name__}, not the declared {declared_type}"
            )
    return problems


def _output_types(cls: type) -> dict[str, object]:
    """Each declared output's annotation, evaluated where its class is defined."""
    types: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if not issubclass(klass, Component) or klass is Component:
            continue
        namespace = vars(importlib.import_module(klass.__module__))
        for key, annotation in inspect.get_annotations(klass).items():
            if isinstance(annotation, str) and "ClassVar" not in annotation:
                types[key] = eval(annotation, namespace)  # noqa: S307
    return types


def _conforms(value: object, annotation: object) -> bool:
    """Whether ``value`` is of the declared type, containers and unions included (an
    ``Output[T]`` is checked as an Output: its value is not known while the program runs)."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if annotation is None or annotation is type(None):
        return value is None
    if origin in (Union, UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is pulumi.Output or annotation is pulumi.Output:
        return isinstance(value, pulumi.Output)
    if origin in (list, tuple, collections.abc.Sequence):
        item = args[0] if args else object
        return isinstance(value, (list, tuple)) and all(_conforms(v, item) for v in value)
    if origin in (dict, collections.abc.Mapping):
        key_type, item = args if args else (object, object)
        return isinstance(value, Mapping) and all(
            _conforms(k, key_type) and _conforms(v, item) for k, v in value.items()
        )
    if inspect.isclass(annotation):
        return isinstance(value, annotation)
    return True


def ordering_problems(plan: Plan) -> list[str]:
    """Resources that do not wait for what an enclosing component waits for."""
    components_by_urn = {r.urn: r for r in plan.resources if not r.custom}
    problems: list[str] = []
    for resource in plan.resources:
        parent = resource.parent
        own = set(resource.dependencies)
        while parent in components_by_urn:
            missing = set(components_by_urn[parent].dependencies) - own
            if missing:
                problems.append(
                    f"{resource.urn} does not wait for {sorted(missing)}, which its enclosing "
                    f"component {parent} depends on"
                )
            parent = components_by_urn[parent].parent
    return problems


@dataclass
class Run:
    plan: Plan
    instances: list[Component]
    registrations: dict[int, list[Mapping[str, Any]]]


def _recording(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[list[Component], dict[int, list[Mapping[str, Any]]]]:
    instances: list[Component] = []
    registrations: dict[int, list[Mapping[str, Any]]] = {}
    original_init = Component.__init__
    original_register = pulumi.ComponentResource.register_outputs

    def init(self: Component, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        instances.append(self)
        original_init(self, name, opts)

    def register(self: pulumi.ComponentResource, outputs: Any) -> None:
        registrations.setdefault(id(self), []).append(dict(outputs))
        original_register(self, outputs)

    monkeypatch.setattr(Component, "__init__", init)
    monkeypatch.setattr(pulumi.ComponentResource, "register_outputs", register)
    return instances, registrations


@pytest.fixture(scope="module", params=STACKS)
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """The whole program for one stack, recording every component and what it registered."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        instances, registrations = _recording(monkeypatch)
        plan = run_program(REPO_ROOT, load_stack_config(REPO_ROOT, request.param))
        yield Run(plan, instances, registrations)


# -- the program ----------------------------------------------------------------------------


def test_every_component_class_follows_the_contract() -> None:
    classes = component_classes()
    assert len(classes) >= 15, [c.__qualname__ for c in classes]
    problems = [problem for cls in classes for problem in class_problems(cls)]
    assert problems == [], "\n".join(problems)


def test_every_component_registers_exactly_its_declared_outputs(run: Run) -> None:
    assert len(run.instances) >= 15
    problems = [
        problem
        for component in run.instances
        for problem in instance_problems(component, run.registrations.get(id(component), []))
    ]
    assert problems == [], "\n".join(problems)


def test_every_child_is_created_with_child_opts() -> None:
    sources = {
        path.relative_to(REPO_ROOT).as_posix(): path.read_text()
        for path in sorted((REPO_ROOT / "components").rglob("*.py"))
    }
    assert len(sources) >= 30
    del sources["components/lib/component.py"]  # where child_opts() itself is built
    problems = [p for path, source in sources.items() for p in child_opts_problems(path, source)]
    assert problems == [], "\n".join(problems)


def test_every_resource_waits_for_what_its_components_wait_for(run: Run) -> None:
    ordered = [r for r in run.plan.resources if not r.custom and r.dependencies]
    assert len(ordered) >= 5, "the program orders its components with depends_on"
    problems = ordering_problems(run.plan)
    assert problems == [], "\n".join(problems[:20])


# -- the checks fail on seeded violations ----------------------------------------------------


def _with_aws() -> pulumi.ResourceOptions:
    """The stacks disable default providers: seeded components get an explicit one."""
    return pulumi.ResourceOptions(providers=[pulumi_aws.Provider("aws", region="eu-west-1")])


@dataclass(frozen=True)
class _UndocumentedArgs:
    size: int
    depends_on: tuple[pulumi.Resource, ...] = ()
    """Waits for these."""
    after: s3.Bucket | None = None
    """Waits for this too, by another name."""
    provider: pulumi_aws.Provider | None = None
    """A provider is not ordering."""


class _Seeded(Component):
    TYPE = "exposcholar:test:Other"

    bucketName: pulumi.Output[str]  # noqa: N815 - the violation under test

    def __init__(
        self, name: str, args: _UndocumentedArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)


class _Bare(pulumi.ComponentResource):
    pass


def test_class_check_names_each_seeded_violation() -> None:
    problems = "\n".join(class_problems(_Seeded))
    assert "_Seeded.TYPE is 'exposcholar:test:Other'" in problems
    assert "_UndocumentedArgs.size has no docstring" in problems
    assert "_UndocumentedArgs.depends_on: ordering is depends_on on the component" in problems
    assert "_Seeded.bucketName: outputs are snake_case" in problems
    assert "_Seeded.bucketName: output has no docstring" in problems
    assert "_UndocumentedArgs.after: ordering is depends_on on the component" in problems
    assert "_UndocumentedArgs.provider" not in problems
    in_lib = type(
        "_InLib",
        (_Seeded,),
        {"__module__": "components.lib.extra", "TYPE": "exposcholar:app:_InLib"},
    )
    assert "_InLib is a component in components.lib, which holds none" in class_problems(in_lib)
    assert not [p for p in class_problems(in_lib) if "TYPE" in p]
    ungrouped = type("_Ungrouped", (_Seeded,), {"TYPE": "exposcholar:whatever:_Ungrouped"})
    assert "_Ungrouped.TYPE is 'exposcholar:whatever:_Ungrouped'" in "\n".join(
        class_problems(ungrouped)
    )
    assert class_problems(_Bare) == [
        "_Bare is a ComponentResource but not a components.lib.component.Component"
    ]


@dataclass(frozen=True)
class _LeakyArgs:
    label: str
    """Names the bucket."""


class _Leaky(Component):
    TYPE = "exposcholar:test:_Leaky"

    bucket: s3.Bucket
    """The bucket itself (the violation: a child resource)."""
    bucket_name: pulumi.Output[str]
    """Its name."""

    def __init__(
        self, name: str, args: _LeakyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        self.bucket = s3.Bucket(f"{name}-{args.label}", opts=self.child_opts())
        self.bucket_name = self.bucket.bucket
        self.extra = self.bucket.arn
        self.register_outputs({"bucketName": self.bucket_name})

    @property
    def first_bucket(self) -> s3.Bucket:
        return self.bucket


def test_instance_check_names_each_seeded_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    instances, registrations = _recording(monkeypatch)
    config = load_stack_config(REPO_ROOT, STACKS[0])

    def program() -> None:
        _Leaky("leaky", _LeakyArgs("data"), opts=_with_aws())

    capture(config, program)
    (leaky,) = instances
    problems = "\n".join(instance_problems(leaky, registrations[id(leaky)]))
    assert "registered ['bucketName']; declared outputs are ['bucket', 'bucket_name']" in problems
    assert "exposes undeclared attributes ['extra']" in problems
    assert "exposes a child resource at bucket" in problems
    assert "exposes a child resource at first_bucket (a property)" in problems
    setattr(leaky, "bucket_name", "a plain string")  # noqa: B010 - an undeclared type, on purpose
    wrongly_typed = "\n".join(instance_problems(leaky, registrations[id(leaky)]))
    assert "_Leaky 'leaky'.bucket_name is a str, not the declared pulumi.output.Output[str]" in (
        wrongly_typed
    )


def test_child_opts_check_names_a_child_built_with_its_own_options() -> None:
    source = (
        "import pulumi\n"
        "def build(self):\n"
        "    a = Bucket('a', opts=self.child_opts())\n"
        "    b = Bucket('b', opts=pulumi.ResourceOptions(parent=self, protect=True))\n"
    )
    assert child_opts_problems("components/aws/x.py", source) == [
        "components/aws/x.py:4 builds ResourceOptions(parent=...): use child_opts()"
    ]


def test_ordering_check_names_a_child_that_does_not_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_stack_config(REPO_ROOT, STACKS[0])

    class _Careless(Component):
        TYPE = "exposcholar:test:_Careless"

        def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
            super().__init__(name, opts)
            s3.Bucket(f"{name}-kept", opts=self.child_opts())
            s3.Bucket(f"{name}-forgot", opts=pulumi.ResourceOptions(parent=self))
            self.register()

    def program() -> None:
        aws = _with_aws()
        first = s3.Bucket("first", opts=aws)
        _Careless(
            "careless",
            opts=pulumi.ResourceOptions.merge(aws, pulumi.ResourceOptions(depends_on=[first])),
        )

    problems = ordering_problems(capture(config, program))
    assert len(problems) == 1, problems
    assert "careless-forgot" in problems[0] and "does not wait for" in problems[0]
