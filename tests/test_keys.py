from multialpha.keys import Keys


def test_default_namespace_keeps_bare_market_names() -> None:
    k = Keys()
    assert k.bars("ES") == "market:ES:1min"
    assert k.bar_log("ES") == "market:ES:1min:log"
    assert k.hub_control() == "datahub:control"
    assert k.heartbeat("hub") == "multialpha:hb:hub"
    assert k.orders() == "multialpha:orders"


def test_other_namespaces_never_collide_with_the_default() -> None:
    default, paper = Keys(), Keys("paper")
    assert paper.bars("ES") == "paper:market:ES:1min"
    names = ("bars", "bar_log")
    for n in names:
        assert getattr(default, n)("ES") != getattr(paper, n)("ES")
    assert default.portfolio("positions") != paper.portfolio("positions")
    assert paper.hub_control() != default.hub_control()


def test_the_market_pattern_covers_every_market_name() -> None:
    """The ACL rules grant `market_pattern()`: every bar channel, log, previous-front name and
    minute notice of a namespace must match it, and nothing of another namespace may."""
    from fnmatch import fnmatchcase

    for k, other in ((Keys(), Keys("paper")), (Keys("paper"), Keys())):
        names = [k.bars("ES"), k.bar_log("ES"), k.prev_bars("ES"), k.prev_bar_log("ES"), k.minute_closed(),
                 k.bars_pattern()]
        assert all(fnmatchcase(n, k.market_pattern()) for n in names), names
        assert not fnmatchcase(other.bars("ES"), k.market_pattern())
