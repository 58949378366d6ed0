"""The package's public surface: every advertised name resolves to what its owning module defines;
the organism loads offline."""

from __future__ import annotations

import inspect
from importlib import import_module

import pytest

import saewidgets as sw


def test_every_public_name_resolves():
    """Each lazy name is the object of the module ``_LAZY`` names (a module name: that module), and
    each is a class, a function or a module: a stray ``None``, a wrong module or a name that only
    exists in ``__all__`` fails here."""
    assert set(sw.__all__) <= set(dir(sw))
    assert len(set(sw.__all__)) == len(sw.__all__)
    for name in sw.__all__:
        value = getattr(sw, name)
        assert inspect.isclass(value) or inspect.isfunction(value) or inspect.ismodule(value), (name, value)
        owner = sw._LAZY.get(name)
        if owner is None:
            assert value is getattr(import_module("saewidgets.core"), name), name
        elif owner == f".{name}":
            assert value is import_module(owner, "saewidgets"), name
        else:
            assert value is getattr(import_module(owner, "saewidgets"), name), name
            if not inspect.ismodule(value):
                assert value.__module__.startswith("saewidgets."), (name, value.__module__)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        sw.no_such_thing  # noqa: B018


def test_organism_loads_offline(no_network):
    model, sae = sw.organism()
    binding = sw.bind(model, sae)
    assert binding.d_model == sae.d_in  # its load time: tests/test_organism.py
