"""The backends the transport contract runs against (tests/support/transports.py): every test of the suite runs on
the fake, on feign against the app on local ports, and on Kafka against a real broker (integration tier)."""

import pytest

from ..support.transports import Failure, FakeBackend, FeignBackend, KafkaBackend

KAFKA_MARKS = [pytest.mark.integration, pytest.mark.kafka]
BACKENDS = {"fake": FakeBackend, "feign": FeignBackend, "kafka": KafkaBackend}


def _params(*, kinds: bool = False, only: Failure | None = None):
    """One param per backend, or per (backend, failure kind) it can have: a Kafka broker that answers does not
    refuse an event of ours. `only`: the backends that can have this failure."""
    params = []
    for name, backend in BACKENDS.items():
        marks = KAFKA_MARKS if name == "kafka" else []
        if kinds:
            params.extend(
                pytest.param((name, kind), id=f"{name}-{kind.value}", marks=marks) for kind in backend.failures
            )
        elif only is None or only in backend.failures:
            params.append(pytest.param(name, marks=marks))
    return params


@pytest.fixture(params=_params())
def backend(request):
    """A transport and its other side, working (Kafka: the shared broker)."""
    made = (
        KafkaBackend(request.getfixturevalue("kafka_bootstrap"))
        if request.param == "kafka"
        else BACKENDS[request.param]()
    )
    yield made
    made.close()


@pytest.fixture(params=_params(kinds=True))
def failing(request):
    """(backend, failure kind) for each kind each backend can have; Kafka's on a private broker."""
    name, kind = request.param
    if name == "kafka":
        broker = request.getfixturevalue("private_broker")
        made = KafkaBackend(broker.bootstrap, broker)
    else:
        made = BACKENDS[name]()
    yield made, kind
    made.heal()
    made.close()


@pytest.fixture(params=_params(only=Failure.REFUSES))
def refusing(request):
    """A backend whose other side answers and refuses events (not Kafka)."""
    made = BACKENDS[request.param]()
    made.fail(Failure.REFUSES)
    yield made
    made.heal()
    made.close()
