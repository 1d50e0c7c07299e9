"""The circuit breaker (transport/circuit.py) over its whole cycle, with an injected clock: closed -> open ->
half-open -> exactly one trial per open wait -> closed or open again; the failure rate over a sliding window."""

import pytest

from dailyfeed.config import load_settings
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.transport.base import CircuitOpen, TransportRejected, TransportUnavailable
from dailyfeed.transport.circuit import BreakerGuarded, CircuitBreaker

F, S = True, False  # a failed and a successful call


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def feed(breaker, outcomes):
    """Record each outcome as a call the breaker let through; the states seen after each."""
    states = []
    for failed in outcomes:
        assert breaker.allow(), f"call refused in state {breaker.state} after {states}"
        breaker.record(failed)
        states.append(breaker.state)
    return states


def trials_allowed(breaker, attempts=3):
    """How many of `attempts` calls made at the same moment were let through."""
    return sum(breaker.allow() for _ in range(attempts))


def test_opens_at_failure_rate_then_half_opens_after_wait_and_closes_on_success():
    clock = Clock()
    breaker = CircuitBreaker(window_size=4, minimum_calls=4, failure_rate=0.5, open_wait_s=10, clock=clock)
    assert feed(breaker, [S, F, S]) == ["closed"] * 3
    assert feed(breaker, [F]) == ["open"]  # 2 of 4 failed
    assert not breaker.allow()
    clock.now = 9.99
    assert breaker.state == "open" and not breaker.allow()
    clock.now = 10
    assert breaker.state == "half-open"
    assert trials_allowed(breaker) == 1  # the one trial call; the others wait for it
    breaker.record(S)
    assert breaker.state == "closed" and trials_allowed(breaker) == 3


def test_the_whole_cycle_allows_exactly_one_trial_per_open_wait():
    clock = Clock()
    breaker = CircuitBreaker(window_size=2, minimum_calls=2, failure_rate=1.0, open_wait_s=5, clock=clock)
    for cycle in range(3):  # open -> trial -> closed, again and again: the trial flag is cleared every time
        assert feed(breaker, [F, F])[-1] == "open", cycle
        assert trials_allowed(breaker) == 0
        clock.now += 5
        assert trials_allowed(breaker) == 1
        breaker.record(S)
        assert breaker.state == "closed"
        assert feed(breaker, [S, F]) == ["closed", "closed"]  # the window starts afresh after closing
        assert breaker.allow()
        breaker.record(F)
        assert breaker.state == "open"  # [F, F]
        clock.now += 5
        assert trials_allowed(breaker) == 1
        breaker.record(F)  # the trial failed: open for another wait, measured from now
        assert breaker.state == "open" and trials_allowed(breaker) == 0
        clock.now += 4.9
        assert trials_allowed(breaker) == 0
        clock.now += 0.1
        assert trials_allowed(breaker) == 1  # one new trial after the new wait
        breaker.record(S)
        assert breaker.state == "closed"


def test_a_rate_below_the_threshold_stays_closed():
    breaker = CircuitBreaker(window_size=10, minimum_calls=10, failure_rate=0.5, clock=Clock())
    assert set(feed(breaker, [F, F, F, F, S, S, S, S, S, S])) == {"closed"}  # 4 of 10
    breaker = CircuitBreaker(window_size=10, minimum_calls=10, failure_rate=0.5, clock=Clock())
    assert feed(breaker, [F, F, F, F, F, S, S, S, S, S])[-1] == "open"  # 5 of 10


def test_not_enough_calls_never_opens():
    breaker = CircuitBreaker(window_size=10, minimum_calls=5, failure_rate=0.5, clock=Clock())
    assert feed(breaker, [F, F, F, F]) == ["closed"] * 4
    assert feed(breaker, [F]) == ["open"]


def test_outcomes_older_than_the_window_stop_counting():
    # Old successes no longer dilute the rate: the last 4 calls are 3 failures of 4.
    breaker = CircuitBreaker(window_size=4, minimum_calls=4, failure_rate=0.75, clock=Clock())
    assert feed(breaker, [S] * 6 + [F, F, F])[-1] == "open"
    # Old failures no longer count: the last 4 calls are 2 failures of 4.
    breaker = CircuitBreaker(window_size=4, minimum_calls=4, failure_rate=0.75, clock=Clock())
    assert set(feed(breaker, [F, F, S, S, S, S, F, F])) == {"closed"}


def test_a_window_smaller_than_the_minimum_calls_opens_once_it_is_full():
    breaker = CircuitBreaker(window_size=3, minimum_calls=10, failure_rate=1.0, clock=Clock())
    assert feed(breaker, [F, F, F]) == ["closed", "closed", "open"]


def test_settings_choose_every_threshold():
    settings = load_settings(
        {"circuit.window-size": 4, "circuit.minimum-calls": 2, "circuit.failure-rate": 0.75, "circuit.open-wait-s": 7}
    )
    breaker = CircuitBreaker.from_settings(settings)
    assert (breaker.window_size, breaker.minimum_calls, breaker.failure_rate, breaker.open_wait_s) == (4, 2, 0.75, 7)
    assert set(feed(CircuitBreaker.from_settings(settings), [F, S])) == {"closed"}  # 1 of 2 < 0.75
    assert feed(CircuitBreaker.from_settings(settings), [F, F])[-1] == "open"  # 2 calls are enough
    assert feed(CircuitBreaker.from_settings(settings), [S] * 6 + [F, F, F])[-1] == "open"  # a window of 4


def test_a_breaker_built_without_settings_has_the_documented_defaults():
    """Transports made without a breaker get CircuitBreaker(): the same thresholds as the default settings."""
    configured = CircuitBreaker.from_settings(load_settings(environ={}))
    default = CircuitBreaker()
    assert (default.window_size, default.minimum_calls, default.failure_rate, default.open_wait_s) == (
        configured.window_size,
        configured.minimum_calls,
        configured.failure_rate,
        configured.open_wait_s,
    )


class Scripted(BreakerGuarded):
    """A transport whose deliveries succeed (None) or raise, as scripted."""

    kind = "scripted"

    def __init__(self, outcomes, breaker):
        self.breaker, self.outcomes, self.calls = breaker, list(outcomes), 0

    def _deliver(self, event):
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome

    def _topic_of(self, event):
        return "member-activity-20261122"


EVENT = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=31)


def publish_all(transport, times):
    results = []
    for _ in range(times):
        try:
            transport.publish(EVENT)
            results.append("ok")
        except (TransportUnavailable, TransportRejected) as exc:
            results.append(type(exc).__name__)
    return results


def test_rejections_and_deliveries_count_as_successes_and_only_unavailability_as_failure():
    breaker = CircuitBreaker(window_size=2, minimum_calls=2, failure_rate=1.0, open_wait_s=60, clock=Clock())
    rejected = Scripted([TransportRejected("400")] * 3, breaker)
    assert publish_all(rejected, 3) == ["TransportRejected"] * 3
    assert breaker.state == "closed" and rejected.calls == 3

    breaker = CircuitBreaker(window_size=2, minimum_calls=2, failure_rate=1.0, open_wait_s=60, clock=Clock())
    alternating = Scripted([TransportUnavailable("down"), None] * 2, breaker)
    assert publish_all(alternating, 4) == ["TransportUnavailable", "ok"] * 2
    assert breaker.state == "closed" and alternating.calls == 4

    breaker = CircuitBreaker(window_size=2, minimum_calls=2, failure_rate=1.0, open_wait_s=60, clock=Clock())
    down = Scripted([TransportUnavailable("timeout")] * 2, breaker)
    assert publish_all(down, 2) == ["TransportUnavailable"] * 2
    with pytest.raises(CircuitOpen, match="scripted transport: circuit open") as err:
        down.publish(EVENT)
    assert down.calls == 2 and err.value.topic == "member-activity-20261122"  # not attempted


def test_a_transports_trial_publish_closes_or_reopens_its_circuit():
    clock = Clock()
    breaker = CircuitBreaker(window_size=2, minimum_calls=2, failure_rate=1.0, open_wait_s=5, clock=clock)
    transport = Scripted([TransportUnavailable("down")] * 3 + [None, None], breaker)
    assert publish_all(transport, 3) == ["TransportUnavailable", "TransportUnavailable", "CircuitOpen"]
    clock.now = 5
    assert publish_all(transport, 2) == ["TransportUnavailable", "CircuitOpen"]  # the trial failed: open again
    clock.now = 10
    assert publish_all(transport, 2) == ["ok", "ok"]  # the trial worked: closed, the next call goes through
    assert transport.calls == 5 and breaker.state == "closed"


def test_kafka_transport_to_a_dead_broker_opens_its_circuit():
    from dailyfeed.transport.kafka import KafkaTransport
    from dailyfeed.transport.topics import DateTopics
    from tests.support.apps import free_port

    transport = KafkaTransport(
        f"127.0.0.1:{free_port()}",
        DateTopics("member-activity-", "UTC", 1, 1, 1000),
        send_timeout_s=1.0,
        breaker=CircuitBreaker(window_size=2, minimum_calls=2, failure_rate=1.0, open_wait_s=60),
    )
    deliveries = []
    deliver = transport._deliver
    transport._deliver = lambda event: deliveries.append(event) or deliver(event)
    try:
        for _ in range(2):
            with pytest.raises(TransportUnavailable):
                transport.publish(EVENT)
        with pytest.raises(CircuitOpen) as err:
            transport.publish(EVENT)
        assert len(deliveries) == 2  # the third publish tried no connection
        assert err.value.topic and err.value.topic.startswith("member-activity-")
    finally:
        transport.close()
