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
