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
