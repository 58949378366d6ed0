"""The package's public surface: every advertised name resolves; the organism loads fast."""

from __future__ import annotations

import time

import saewidgets as sw


def test_every_public_name_resolves():
    for name in sw.__all__:
        assert getattr(sw, name) is not None, name
    assert set(sw.__all__) <= set(dir(sw))


def test_unknown_attribute_is_an_attribute_error():
    try:
        sw.no_such_thing  # noqa: B018
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:
        raise AssertionError("expected AttributeError")


def test_organism_loads_offline_quickly(no_network):
    start = time.perf_counter()
    model, sae = sw.organism()
    elapsed = time.perf_counter() - start
    binding = sw.bind(model, sae)
    assert binding.d_model == sae.d_in
    assert elapsed < 10, f"organism() took {elapsed:.1f}s (target: under 3 s on a quiet machine)"
