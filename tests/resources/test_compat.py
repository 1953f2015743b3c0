"""Code written for the reference SDK keeps working: package re-exports, key grammar, chat errors."""

from __future__ import annotations

import importlib
import pkgutil
import typing

import pytest

import roost
import roost.resources
from roost import Roost, RoostApiError
from roost.resources.chat import CortexStreamError

from .conftest import MockApi
from .test_chat import CBASE, CONV, stream_reply

pytestmark = pytest.mark.anyio


def noun_modules() -> list[str]:
    return [
        info.name for info in pkgutil.iter_modules(roost.resources.__path__) if not info.name.startswith("_")
    ]


def test_reference_style_imports_resolve() -> None:
    from roost.resources import PushOptions, Roosts  # the import is what is tested

    assert Roosts is roost.Roosts
    assert PushOptions is roost.PushOptions


@pytest.mark.parametrize("name", noun_modules())
def test_package_re_exports_every_public_name_of_each_noun(name: str) -> None:
    module = importlib.import_module(f"roost.resources.{name}")
    for public in module.__all__:
        assert public in roost.resources.__all__, f"{name}.{public}"
        assert getattr(roost.resources, public) is getattr(module, public), f"{name}.{public}"


def test_every_resource_class_is_re_exported() -> None:
    from roost.resources._base import Resource

    for name in noun_modules():
        module = importlib.import_module(f"roost.resources.{name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Resource)
                and value.__module__ == module.__name__
            ):
                assert getattr(roost.resources, value.__name__) is value


def test_keys_permission_and_resource_follow_the_scope_grammar() -> None:
    from roost.resources.keys import Permission, Resource

    assert set(typing.get_args(Permission)) == {"read", "write", "deploy", "rollback", "admin"}
    assert set(typing.get_args(Resource)) == {
        "roost",
        "site",
        "machine",
        "chat",
        "deploy",
        "process",
        "user",
        "installer",
    }


async def test_chat_error_frame_is_a_runtime_error_and_an_api_error(api: MockApi, client: Roost) -> None:
    stream_reply(api, f"{CBASE}/{CONV}", [b'0:"partial"\n3:"cortex response timed out"\n'])
    with pytest.raises(RuntimeError) as caught:
        async for _ in client.chat.send(CONV, "hi"):
            pass
    assert isinstance(caught.value, RoostApiError)
    assert isinstance(caught.value, CortexStreamError)
    assert caught.value.code == "cortex_stream_error"
    assert roost.CortexStreamError is CortexStreamError
