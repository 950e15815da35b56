"""The schema derivation (tools/engine/schema.py) against a published provider schema.

``tests/fixtures/pulumi-docker-5.1.0-schema-excerpt.json`` holds three resources of the
pulumi-docker package schema as published (repository, path and commit in its ``source``; only
descriptions dropped) and every type they reach. The installed SDK is 5.2.0, whose only
differences in these resources are recorded in ``SDK_5_2_ADDITIONS`` (see the fixture's note):
everything else derived from the SDK's Python classes must equal the published schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tools.engine.schema import SchemaCache, SchemaDeriver, Spec, sdk_versions

FIXTURE = Path(__file__).parent / "fixtures" / "pulumi-docker-5.1.0-schema-excerpt.json"
PUBLISHED = json.loads(FIXTURE.read_text())
SDK_5_2_ADDITIONS = {
    ("docker:index/container:Container", "deviceCgroupRules"),
    ("docker:index/ContainerUpload:ContainerUpload", "owner"),
    ("docker:index/ContainerUpload:ContainerUpload", "group"),
}


def published_spec(spec: dict[str, Any]) -> Spec:
    """A published property type in the derivation's notation (types named by their last
    token segment, as the SDK names its classes ``<Name>Args``)."""
    if "$ref" in spec:
        token = spec["$ref"].removeprefix("#/types/")
        target = PUBLISHED["types"][token]
        return {"enum": token} if "enum" in target else {"ref": token.rsplit(":", 1)[-1]}
    kind = spec.get("type")
    if kind == "array":
        return {"type": "array", "items": published_spec(spec["items"])}
    if kind == "object":
        inner = spec.get("additionalProperties", {"type": "any"})
        return {"type": "object", "additionalProperties": published_spec(inner)}
    if "oneOf" in spec:
        return {"oneOf": [published_spec(s) for s in spec["oneOf"]]}
    return {"type": kind}


def derived_spec(spec: Spec, deriver: SchemaDeriver) -> Spec:
    if "$ref" in spec:
        target = deriver.types[spec["$ref"]]
        if "enum" in target:
            return {"enum": spec["$ref"]}
        return {"ref": spec["$ref"].rsplit(".", 1)[-1].removesuffix("Args")}
    kind = spec.get("type")
    if kind == "array":
        return {"type": "array", "items": derived_spec(spec["items"], deriver)}
    if kind == "object":
        return {
            "type": "object",
            "additionalProperties": derived_spec(spec["additionalProperties"], deriver),
        }
    if "oneOf" in spec:
        return {"oneOf": [derived_spec(s, deriver) for s in spec["oneOf"]]}
    return {"type": kind}


def compare(
    token: str,
    *,
    published: dict[str, Any],
    published_required: list[str],
    derived: dict[str, Spec],
    derived_required: list[str],
    deriver: SchemaDeriver,
) -> None:
    extra = {name for name in derived if (token, name) in SDK_5_2_ADDITIONS}
    assert set(derived) - extra == set(published), token
    assert set(derived_required) == set(published_required), token
    for name, spec in published.items():
        assert derived_spec(derived[name], deriver) == published_spec(spec), (token, name)


def test_the_excerpt_holds_the_three_resources() -> None:
    """The parametrization below is built from the fixture: an emptied or truncated excerpt
    would leave nothing to compare."""
    assert set(PUBLISHED["resources"]) == {
        "docker:index/container:Container",
        "docker:index/image:Image",
        "docker:index/remoteImage:RemoteImage",
    }


@pytest.mark.parametrize("token", sorted(PUBLISHED["resources"]))
def test_resource_inputs_match_the_published_schema(token: str) -> None:
    deriver = SchemaDeriver()
    schema = deriver.resource(token)
    assert schema is not None
    published = PUBLISHED["resources"][token]
    compare(
        token,
        published=published["inputProperties"],
        published_required=published.get("requiredInputs", []),
        derived=schema.input_properties,
        derived_required=schema.required_inputs,
        deriver=deriver,
    )
    # every object type the resource reaches matches too, and no type is missed
    reached = {
        name.rsplit(".", 1)[-1].removesuffix("Args"): spec
        for name, spec in deriver.types.items()
        if "properties" in spec
    }
    published_objects = {
        token.rsplit(":", 1)[-1]: (token, spec)
        for token, spec in PUBLISHED["types"].items()
        if "properties" in spec
    }
    assert reached, f"{token} reaches no object type: the derivation read nothing"
    for short, spec in reached.items():
        type_token, published_type = published_objects[short]
        compare(
            type_token,
            published=published_type["properties"],
            published_required=published_type.get("required", []),
            derived=spec["properties"],
            derived_required=spec["required"],
            deriver=deriver,
        )


def test_closed_enums_are_derived_with_their_values() -> None:
    deriver = SchemaDeriver()
    deriver.resource("docker:index/image:Image")
    token = "docker:index/builderVersion:BuilderVersion"
    published = [entry["value"] for entry in PUBLISHED["types"][token]["enum"]]
    assert deriver.types[token]["enum"] == published


def test_open_enums_are_a_string_or_the_enum() -> None:
    schema = SchemaDeriver().resource("aws:rds/instance:Instance")
    assert schema is not None
    assert schema.input_properties["instanceClass"] == {
        "oneOf": [{"type": "string"}, {"$ref": "aws:rds/InstanceType:InstanceType"}]
    }


def test_the_cache_is_keyed_by_the_sdk_versions(tmp_path: Path) -> None:
    first = SchemaCache(tmp_path)
    assert first.resource("docker:index/image:Image") is not None
    first.save()
    (written,) = tmp_path.glob("engine-schema-*.json")
    second = SchemaCache(tmp_path)
    assert "docker:index/image:Image" in second.resources, "read back, not derived again"
    assert second.resource("docker:index/image:Image") == first.resource("docker:index/image:Image")
    data = json.loads(written.read_text())
    assert data["versions"].items() >= sdk_versions().items()
    assert data["versions"]["derivation"], "the derivation's own code is part of the key"
    data["versions"] = {**data["versions"], "pulumi-docker": "0.0.1"}
    written.write_text(json.dumps(data))
    assert SchemaCache(tmp_path).resources == {}, "a cache of other SDK versions is not read"
