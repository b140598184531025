from multialpha.supervisor.policy import PolicySettings, RestartPolicy

S = PolicySettings(backoff_initial_s=1, backoff_max_s=60, healthy_reset_s=300, flap_restarts=5, flap_window_s=300)


def test_backoff_doubles_to_the_cap() -> None:
    p = RestartPolicy(PolicySettings(backoff_initial_s=1, backoff_max_s=8, flap_restarts=100, flap_window_s=1))
    delays = []
    now = 0.0
    for _ in range(7):
        p.started(now)
        d = p.went_down(now + 0.5)
        delays.append(d.delay)
        assert d.restart and d.at == now + 0.5 + d.delay
        now = d.at + 10  # outside the flap window each time
    assert delays == [1, 2, 4, 8, 8, 8, 8]


def test_backoff_resets_after_healthy_period() -> None:
    p = RestartPolicy(S)
    p.started(0)
    assert p.went_down(1).delay == 1
    p.started(2)
    assert p.went_down(3).delay == 2
    p.started(4)
    assert p.went_down(4 + 299).delay == 4  # not yet healthy long enough
    p.started(400)
    assert p.went_down(400 + 300).delay == 1  # ran 300 s: forgiven


def test_flapping_marks_failed() -> None:
    p = RestartPolicy(S)
    now = 0.0
    for i in range(5):
        p.started(now)
        d = p.went_down(now + 1)
        assert d.restart, i
        now = d.at
    p.started(now)
    d = p.went_down(now + 1)
    assert not d.restart and "flapping" in d.reason
    assert p.total_restarts == 5


def test_old_restarts_leave_the_flap_window() -> None:
    p = RestartPolicy(
        PolicySettings(backoff_initial_s=1, backoff_max_s=1, healthy_reset_s=1e9, flap_restarts=2, flap_window_s=100)
    )
    assert p.went_down(0).restart
    assert p.went_down(50).restart
    assert not p.went_down(60).restart  # two in the window already
    assert p.went_down(151).restart  # both older than 100 s now


def test_reset_forgives() -> None:
    p = RestartPolicy(PolicySettings(flap_restarts=1))
    assert p.went_down(0).restart
    assert not p.went_down(1).restart
    p.reset()
    d = p.went_down(2)
    assert d.restart and d.delay == 1
