"""Applying children, with the operator's own client, against the real control plane."""

from __future__ import annotations

import pytest

from tests.testbed.cluster import ControlPlane

pytestmark = pytest.mark.cluster


@pytest.fixture
def owner(cluster: ControlPlane, namespace: str) -> dict:
    """A reference to an object standing in for the ModelDeployment that controls the children."""
    cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    uid = cluster.get("configmap", "owner", namespace)["metadata"]["uid"]
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "controller": True}


def _config_map(namespace: str, name: str, owner: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "ownerReferences": [owner]},
        "data": {"model": name},
    }


def _connections_opened(kube) -> int:
    pools = kube.api_client.rest_client.pool_manager.pools
    # urllib3's container refuses iteration; keys() copies them under its lock.
    return sum(pools[key].num_connections for key in pools.keys())  # noqa: SIM118


def test_writing_one_child_after_another_reuses_one_connection(
    operator_client, cluster: ControlPlane, namespace: str, owner: dict
):
    from modelplane.operator.apply import apply_children

    operator_client.resource("v1", "ConfigMap")  # discovery, before counting
    opened_before = _connections_opened(operator_client)

    written = apply_children(
        operator_client, [_config_map(namespace, f"child-{index}", owner) for index in range(5)], compare=False
    )
    edited = [{**_config_map(namespace, f"child-{index}", owner), "data": {"model": "edited"}} for index in range(5)]
    applied = apply_children(operator_client, edited)  # read, taken over and applied: each kind of request

    assert (written, applied) == (5, 5)
    assert cluster.get("configmap", "child-4", namespace)["data"] == {"model": "edited"}
    # An answer left unread holds its connection: each write would open (and handshake) another.
    assert _connections_opened(operator_client) - opened_before <= 1


def test_a_created_child_loses_a_field_the_next_apply_leaves_out(
    operator_client, cluster: ControlPlane, namespace: str, owner: dict
):
    from modelplane.operator.apply import FIELD_MANAGER, apply_children

    created = {**_config_map(namespace, "child", owner), "data": {"model": "child", "dropped": "soon"}}
    assert apply_children(operator_client, [created], compare=False) == 1

    assert apply_children(operator_client, [_config_map(namespace, "child", owner)]) == 1

    live = operator_client.resource("v1", "ConfigMap").get(name="child", namespace=namespace).to_dict()
    # Left owned by the create, the field would stay.
    assert live["data"] == {"model": "child"}
    assert [entry["operation"] for entry in live["metadata"]["managedFields"] if entry["manager"] == FIELD_MANAGER] == [
        "Apply"
    ]


def test_creating_a_child_that_exists_applies_it_instead(
    operator_client, cluster: ControlPlane, namespace: str, owner: dict
):
    from modelplane.operator.apply import apply_children

    assert apply_children(operator_client, [_config_map(namespace, "child", owner)], compare=False) == 1
    # The same pass tried again, after it created the child: unchanged, nothing written.
    assert apply_children(operator_client, [_config_map(namespace, "child", owner)], compare=False) == 0

    assert (
        apply_children(
            operator_client, [{**_config_map(namespace, "child", owner), "data": {"model": "edited"}}], compare=False
        )
        == 1
    )
    assert cluster.get("configmap", "child", namespace)["data"] == {"model": "edited"}


@pytest.mark.parametrize("compare", [True, False], ids=["compared", "created-unread"])
def test_an_object_of_the_childs_name_that_the_owner_does_not_control_is_left_alone(
    operator_client,
    cluster: ControlPlane,
    namespace: str,
    owner: dict,
    compare: bool,
):
    from modelplane.operator.apply import ChildConflict, apply_children

    cluster.kubectl("create", "configmap", "child", "-n", namespace, "--from-literal=model=theirs")
    theirs = cluster.get("configmap", "child", namespace)

    with pytest.raises(ChildConflict) as conflict:
        apply_children(operator_client, [_config_map(namespace, "child", owner)], compare=compare)

    assert "ConfigMap/child already exists and is not controlled by this ModelDeployment" in str(conflict.value)
    assert cluster.get("configmap", "child", namespace) == theirs
