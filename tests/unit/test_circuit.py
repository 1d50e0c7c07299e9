from dailyfeed.transport.circuit import CircuitBreaker


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_opens_at_failure_rate_then_half_opens_after_wait_and_closes_on_success():
    clock = Clock()
    breaker = CircuitBreaker(window_size=4, minimum_calls=4, failure_rate=0.5, open_wait_s=10, clock=clock)
    for failed in (False, True, False):
        assert breaker.allow()
        breaker.record(failed)
    assert breaker.state == "closed"
    breaker.record(True)  # 2 of 4 failed
    assert breaker.state == "open" and not breaker.allow()
    clock.now = 10
    assert breaker.allow()          # the one trial call
    assert not breaker.allow()      # others still wait for it
    breaker.record(False)
    assert breaker.state == "closed" and breaker.allow()


def test_failed_trial_opens_again():
    clock = Clock()
    breaker = CircuitBreaker(window_size=2, minimum_calls=2, failure_rate=1.0, open_wait_s=5, clock=clock)
    breaker.record(True)
    breaker.record(True)
    clock.now = 5
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state == "open" and not breaker.allow()


def test_not_enough_calls_never_opens():
    breaker = CircuitBreaker(window_size=10, minimum_calls=5, failure_rate=0.5)
    for _ in range(4):
        breaker.record(True)
    assert breaker.state == "closed"


def test_both_transports_fail_fast_once_the_circuit_opens():
    """A rejected event (4xx) does not count against the circuit; unavailability does, and then no call is made."""
    import pytest

    from dailyfeed.events import ActivityEvent, ActivityType
    from dailyfeed.transport.base import CircuitOpen, TransportRejected, TransportUnavailable
    from dailyfeed.transport.circuit import BreakerGuarded

    class Scripted(BreakerGuarded):
        kind = "scripted"

        def __init__(self, errors):
            self.breaker = CircuitBreaker(window_size=2, minimum_calls=2, failure_rate=1.0, open_wait_s=60)
            self.errors, self.calls = list(errors), 0

        def _deliver(self, event):
            self.calls += 1
            raise self.errors.pop(0)

        def _topic_of(self, event):
            return "member-activity-20261122"

    event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=1)
    rejected = Scripted([TransportRejected("400")] * 3)
    for _ in range(3):
        with pytest.raises(TransportRejected):
            rejected.publish(event)
    assert rejected.breaker.state == "closed" and rejected.calls == 3

    down = Scripted([TransportUnavailable("timeout")] * 2)
    for _ in range(2):
        with pytest.raises(TransportUnavailable):
            down.publish(event)
    with pytest.raises(CircuitOpen) as err:
        down.publish(event)
    assert down.calls == 2 and err.value.topic == "member-activity-20261122"


def test_kafka_transport_to_a_dead_broker_opens_its_circuit():
    import time

    import pytest

    from dailyfeed.events import ActivityEvent, ActivityType
    from dailyfeed.transport.base import CircuitOpen, TransportUnavailable
    from dailyfeed.transport.kafka import KafkaTransport
    from dailyfeed.transport.topics import DateTopics
    from tests.support.apps import free_port

    transport = KafkaTransport(f"127.0.0.1:{free_port()}", DateTopics("member-activity-", "UTC", 1, 1, 1000),
                               send_timeout_s=1.0,
                               breaker=CircuitBreaker(window_size=2, minimum_calls=2, failure_rate=1.0,
                                                      open_wait_s=60))
    event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=1)
    try:
        for _ in range(2):
            with pytest.raises(TransportUnavailable):
                transport.publish(event)
        started = time.monotonic()
        with pytest.raises(CircuitOpen) as err:
            transport.publish(event)
        assert time.monotonic() - started < 0.5  # no connection attempted
        assert err.value.topic and err.value.topic.startswith("member-activity-")
    finally:
        transport.close()
