"""Graph algorithms over node keys: topological order and cycle finding. No database, no Django."""

import heapq
from collections.abc import Iterable, Sequence


def topological_order(keys: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[str]:
    """Keys with every source before its targets; ties keep the order of `keys`.

    Raises ValueError if the graph has a cycle (use `find_cycle` to name it).
    """
    rank = {key: index for index, key in enumerate(keys)}
    children: dict[str, list[str]] = {key: [] for key in keys}
    indegree = dict.fromkeys(keys, 0)
    for source, target in edges:
        children[source].append(target)
        indegree[target] += 1
    ready = [(rank[key], key) for key in keys if indegree[key] == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        _, key = heapq.heappop(ready)
        ordered.append(key)
        for child in children[key]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, (rank[child], child))
    if len(ordered) != len(keys):
        raise ValueError("the graph has a cycle")
    return ordered


def find_cycle(keys: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[str] | None:
    """One cycle as a path that ends where it starts (["a", "b", "a"]), or None for a DAG."""
    children: dict[str, list[str]] = {key: [] for key in keys}
    for source, target in edges:
        children[source].append(target)
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(keys, white)
    for start in keys:
        if colour[start] != white:
            continue
        # Iterative depth-first search: definitions may hold up to 1,000 nodes in a chain.
        path = [start]
        stack = [iter(children[start])]
        colour[start] = grey
        while stack:
            child = next(stack[-1], None)
            if child is None:
                colour[path.pop()] = black
                stack.pop()
            elif colour[child] == grey:
                return [*path[path.index(child) :], child]
            elif colour[child] == white:
                colour[child] = grey
                path.append(child)
                stack.append(iter(children[child]))
    return None
