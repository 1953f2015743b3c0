"""The blocking tree mirrors the async one: every resource method is reachable, signatures equal."""

from __future__ import annotations

import ast
import functools
import inspect
from collections.abc import Iterator

import pytest

import roost.sync
from roost import Roost as AsyncRoost
from roost.resources._base import Resource
from roost.sync._stubgen import STUB_PATH, render, same_stub

TOKEN = "owk_test_surface"
EXTRAS = {"Roosts": {"start_push", "start_pull"}}


def public_methods(cls: type) -> set[str]:
    return {
        name
        for name, value in vars(cls).items()
        if not name.startswith("_") and (inspect.isfunction(value) or isinstance(value, property))
    }


def async_tree(client: AsyncRoost) -> Iterator[tuple[str, Resource]]:
    """Every resource reachable from the async client, by its attribute path."""
    pending: list[tuple[str, Resource]] = []
    for name, value in vars(AsyncRoost).items():
        if isinstance(value, functools.cached_property):
            pending.append((name, getattr(client, name)))
    pending.append(("processes('s','m')", client.processes("s", "m")))
    pending.append(("members('s')", client.members("s")))
    while pending:
        path, resource = pending.pop()
        yield path, resource
        for slot in getattr(type(resource), "__slots__", ()):
            child = getattr(resource, slot, None)
            if isinstance(child, Resource):
                pending.append((f"{path}.{slot}", child))


def sync_twin(client: roost.sync.Roost, path: str) -> object:
    node: object = client
    for part in path.split("."):
        if part == "processes('s','m')":
            node = client.processes("s", "m")
        elif part == "members('s')":
            node = client.members("s")
        else:
            node = getattr(node, part)
    return node


def test_every_async_resource_method_is_reachable_with_its_signature() -> None:
    async_client = AsyncRoost(token=TOKEN, api_url="http://surface.invalid")
    with roost.sync.Roost(token=TOKEN, api_url="http://surface.invalid") as client:
        visited: set[str] = set()
        for path, resource in async_tree(async_client):
            visited.add(type(resource).__name__)
            twin = sync_twin(client, path)
            assert type(twin).__name__ == type(resource).__name__, path
            assert isinstance(twin, getattr(roost.sync, type(resource).__name__)), path
            for name in public_methods(type(resource)):
                async_member = getattr(resource, name)
                sync_member = getattr(twin, name)
                if callable(async_member):
                    assert callable(sync_member), f"{path}.{name}"
                    assert inspect.signature(sync_member) == inspect.signature(async_member), f"{path}.{name}"
                else:
                    assert sync_member == async_member, f"{path}.{name}"
            for extra in EXTRAS.get(type(resource).__name__, set()):
                assert callable(getattr(twin, extra)), f"{path}.{extra}"
        assert visited == set(roost.sync._client.noun_classes())  # the whole tree, not a corner


def test_stub_declares_exactly_the_async_methods() -> None:
    stub = ast.parse(STUB_PATH.read_text(encoding="utf-8"))
    declared = {
        node.name: {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
        for node in stub.body
        if isinstance(node, ast.ClassDef)
    }
    for name, twin in roost.sync._client.noun_classes().items():
        wanted = public_methods(twin.__wrapped_class__) | EXTRAS.get(name, set())
        assert declared[name] == wanted, name


def test_stub_is_current() -> None:
    assert same_stub(render(), STUB_PATH.read_text(encoding="utf-8")), (
        "roost/sync/__init__.pyi is stale: run `python -m roost.sync._stubgen`"
    )


def test_underscore_names_and_the_raw_http_client_stay_private() -> None:
    with roost.sync.Roost(token=TOKEN, api_url="http://surface.invalid") as client:
        with pytest.raises(AttributeError):
            _ = client.http  # type: ignore[attr-defined]
        with pytest.raises(AttributeError):
            _ = client.roosts._http  # type: ignore[attr-defined]
        assert client.roosts is client.roosts
        assert client.account.api_keys is client.account.api_keys
        assert "start_push" in dir(client.roosts)
        assert "roosts" in dir(client)
