"""The hook contract: every spec has a one-line docstring; descriptors validate themselves."""

from __future__ import annotations

import inspect

import pytest

from multialpha import hookspecs


def test_every_hookspec_has_a_one_line_docstring():
    specs = [f for n, f in vars(hookspecs).items() if n.startswith("multialpha_") and callable(f)]
    assert {f.__name__ for f in specs} >= {"multialpha_strategy_types", "multialpha_ml_veto", "multialpha_features"}
    for f in specs:
        doc = inspect.getdoc(f)
        assert doc and "\n" not in doc, f.__name__


def test_veto_is_firstresult():
    opts = getattr(hookspecs.multialpha_ml_veto, "multialpha_spec")
    assert opts["firstresult"] is True


def test_strategy_type_validates_timeframes_and_loads_lazily():
    with pytest.raises(ValueError):
        hookspecs.StrategyType("x", object, timeframes=("hour",))
    with pytest.raises(ValueError):
        hookspecs.StrategyType("x", object, timeframes=("minute", "week"))
    st = hookspecs.StrategyType("x", "collections:OrderedDict")
    import collections

    assert st.load_class() is collections.OrderedDict
