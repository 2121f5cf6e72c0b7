"""Property tests: random DAGs are accepted, random graphs with a cycle are rejected naming it."""

import itertools

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import client_for
from tests.factories import UserFactory
from workflows.graph import find_cycle, topological_order
from workflows.specs import definition_check, specs_from_input


@st.composite
def dags(draw, max_nodes: int = 25):
    """Nodes n0..nk with edges only from lower to higher index, listed in a random order."""
    count = draw(st.integers(min_value=1, max_value=max_nodes))
    keys = [f"n{index}" for index in range(count)]
    parents = {
        key: draw(st.lists(st.sampled_from(keys[:index]), unique=True, max_size=4)) if index else []
        for index, key in enumerate(keys)
    }
    listed = draw(st.permutations(keys))
    return [{"key": key, "type": "text", "content": key, "depends_on": parents[key]} for key in listed]


@st.composite
def graphs_with_a_cycle(draw):
    nodes = draw(dags(max_nodes=15).filter(lambda nodes: len(nodes) >= 2))
    keys = [node["key"] for node in nodes]
    ring = draw(st.lists(st.sampled_from(keys), min_size=2, max_size=len(keys), unique=True))
    by_key = {node["key"]: node for node in nodes}
    for parent, child in zip(ring, [*ring[1:], ring[0]], strict=True):
        if parent not in by_key[child]["depends_on"]:
            by_key[child]["depends_on"] = [*by_key[child]["depends_on"], parent]
    return nodes


def edges_of(nodes: list[dict]) -> list[tuple[str, str]]:
    return [(parent, node["key"]) for node in nodes for parent in node["depends_on"]]


@given(dags())
def test_random_dags_are_accepted_and_ordered(nodes):
    specs = specs_from_input(nodes)
    definition_check(specs, max_nodes=1000)
    keys = [node["key"] for node in nodes]
    order = topological_order(keys, edges_of(nodes))
    position = {key: index for index, key in enumerate(order)}
    assert sorted(order) == sorted(keys)
    assert all(position[parent] < position[child] for parent, child in edges_of(nodes))


@given(graphs_with_a_cycle())
def test_random_graphs_with_a_cycle_are_rejected_naming_a_real_cycle(nodes):
    cycle = find_cycle([node["key"] for node in nodes], edges_of(nodes))
    assert cycle is not None and cycle[0] == cycle[-1]
    assert all(pair in set(edges_of(nodes)) for pair in itertools.pairwise(cycle))
    with pytest.raises(ValidationError) as rejected:
        definition_check(specs_from_input(nodes), max_nodes=1000)
    messages = [message for messages in rejected.value.message_dict.values() for message in messages]
    assert any(message.startswith("The dependencies form a cycle: ") for message in messages)


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(nodes=st.one_of(dags(max_nodes=10), graphs_with_a_cycle()))
def test_the_api_accepts_exactly_the_acyclic_graphs(nodes):
    api = client_for(UserFactory())
    has_cycle = find_cycle([node["key"] for node in nodes], edges_of(nodes)) is not None
    answer = api.post("/api/v3/workflows", {"name": "Random", "nodes": nodes}, format="json")
    assert answer.status_code == (400 if has_cycle else 201), answer.content
