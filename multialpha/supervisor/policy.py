"""The restart policy, pure: no processes, no clock of its own.

A child that dies (or goes silent) is restarted after a delay that starts at
``backoff_initial_s`` and doubles up to ``backoff_max_s``. Once a child has
run healthily for ``healthy_reset_s`` the delay starts over. If it needed
``flap_restarts`` restarts within ``flap_window_s`` it is *flapping*: marked
failed and left down, so one broken worker cannot burn the CPU the others
need. Every time is a float of seconds from an injected monotonic clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PolicySettings:
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    healthy_reset_s: float = 300.0
    flap_restarts: int = 5
    flap_window_s: float = 300.0

    @classmethod
    def from_settings(cls, s: object) -> "PolicySettings":
        """From config's SupervisorSettings (duck-typed to keep this module import-free)."""
        return cls(
            backoff_initial_s=s.backoff_initial_s,  # type: ignore[attr-defined]
            backoff_max_s=s.backoff_max_s,  # type: ignore[attr-defined]
            healthy_reset_s=s.healthy_reset_s,  # type: ignore[attr-defined]
            flap_restarts=s.flap_restarts,  # type: ignore[attr-defined]
            flap_window_s=s.flap_window_s,  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class Decision:
    """What to do after a child went down: restart at ``at``, or give up."""

    restart: bool
    at: float = 0.0
    delay: float = 0.0
    reason: str = ""


@dataclass
class RestartPolicy:
    settings: PolicySettings
    delay: float = field(init=False)
    restarts: deque[float] = field(default_factory=deque)
    total_restarts: int = 0
    _up_since: float | None = None

    def __post_init__(self) -> None:
        self.delay = self.settings.backoff_initial_s

    def started(self, now: float) -> None:
        self._up_since = now

    def healthy_check(self, now: float) -> None:
        """Called while the child runs well: after healthy_reset_s the backoff resets."""
        if self._up_since is not None and now - self._up_since >= self.settings.healthy_reset_s:
            self.delay = self.settings.backoff_initial_s

    def went_down(self, now: float) -> Decision:
        """The child exited or was killed for silence; decide restart or failure."""
        self.healthy_check(now)
        self._up_since = None
        window = self.settings.flap_window_s
        while self.restarts and now - self.restarts[0] > window:
            self.restarts.popleft()
        if len(self.restarts) >= self.settings.flap_restarts:
            return Decision(
                restart=False,
                reason=f"flapping: {len(self.restarts)} restarts within {window:g}s",
            )
        delay = self.delay
        self.delay = min(self.delay * 2, self.settings.backoff_max_s)
        self.restarts.append(now)
        self.total_restarts += 1
        return Decision(restart=True, at=now + delay, delay=delay)

    def reset(self) -> None:
        """A manual restart forgives the history (the operator fixed something)."""
        self.restarts.clear()
        self.delay = self.settings.backoff_initial_s
        self._up_since = None
