"""Directed graphs of systems (which runs after which, which finds whose identifiers):
cycles, strongly connected parts and paths."""

from __future__ import annotations

import itertools


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        state[start] = 1
        path = [start]
        todo = [iter(sorted(graph.get(start, ())))]
        while todo:  # depth-first, without recursion: a long chain must not overflow
            nxt = next(todo[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(sorted(graph.get(nxt, ()))))
    return None


def strongly_connected(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each node's strongly connected component, as a number (Tarjan, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    stack: list[str] = []
    numbers = itertools.count()
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    number = next(numbers)
                    while True:
                        member = stack.pop()
                        component[member] = number
                        if member == node:
                            break
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child not in component:
                low[node] = min(low[node], index[child])
    return component


def path(graph: dict[str, set[str]], start: str, end: str) -> list[str]:
    """A shortest path from ``start`` to ``end`` in ``graph`` (one exists)."""
    came: dict[str, str | None] = {start: None}
    todo = [start]
    while todo:
        node = todo.pop(0)
        if node == end:
            break
        for nxt in sorted(graph.get(node, ())):
            if nxt not in came:
                came[nxt] = node
                todo.append(nxt)
    path: list[str] = []
    at: str | None = end
    while at is not None:
        path.append(at)
        at = came[at]
    return path[::-1]
