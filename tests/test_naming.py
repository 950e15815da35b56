"""Names, tags and labels come from one helper with one format."""

from __future__ import annotations

import pytest

from components.lib.naming import REQUIRED_TAG_KEYS, Naming, NamingError

NAMING = Naming("exposcholar", "prod", "platform@exposcholar.org", "EXPO-PROD")


def test_physical_names() -> None:
    assert NAMING.physical("network", "flow-logs") == "exposcholar-prod-network-flow-logs"
    with pytest.raises(NamingError, match="lower-case"):
        NAMING.physical("Network", "vpc")
    with pytest.raises(NamingError, match="lower-case"):
        NAMING.physical("network", "flow_logs")
    with pytest.raises(NamingError, match="longer than 32"):
        NAMING.physical("loadbalancer", "internet-facing-edge", max_length=32)


def test_tags_cover_the_required_keys() -> None:
    tags = {**NAMING.default_tags(), **NAMING.tags("network", "vpc", {"Tier": "public"})}
    assert set(REQUIRED_TAG_KEYS) <= set(tags)
    assert tags["Name"] == "exposcholar-prod-network-vpc"
    assert tags["Environment"] == "prod"
    assert tags["ManagedBy"] == "pulumi"
    assert tags["Tier"] == "public"
    assert "Component" not in NAMING.default_tags(), "Component is per resource"


def test_kubernetes_recommended_labels() -> None:
    labels = NAMING.k8s_labels("server", "api", version="1.4.2")
    assert labels == {
        "app.kubernetes.io/name": "server",
        "app.kubernetes.io/instance": "server-prod",
        "app.kubernetes.io/component": "api",
        "app.kubernetes.io/part-of": "exposcholar",
        "app.kubernetes.io/managed-by": "pulumi",
        "app.kubernetes.io/version": "1.4.2",
    }
    assert "app.kubernetes.io/version" not in NAMING.k8s_labels("server", "api")
