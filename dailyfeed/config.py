"""Settings: TOML files under config/ plus environment overrides, validated once at start-up.

Layers, later wins: config/default.toml, the file named by DAILYFEED_CONFIG (if any), DAILYFEED_* environment
variables, then the mapping given to create_app(test_config=...). Keys are the dotted names of SPEC section 2.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .events import PublishType, Service

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
DEFAULT_FILE = CONFIG_DIR / "default.toml"
ENV_PREFIX = "DAILYFEED_"


class ConfigError(ValueError):
    """A setting is missing or has a value we cannot use; the message names the setting."""


SERVICES = tuple(Service)
LOG_FORMATS = ("text", "json")
EVENT_LOOPS = ("uvloop", "asyncio")  # kafka.event-loop: what the Kafka clients' loops can be (transport/loop.py)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: A trusted host: a name or IPv4 address (".example.com" also trusts its subdomains), an IPv6 address in brackets,
#: or "*" (any: only behind a proxy that checks Host itself). No port: a trusted host is trusted on every port.
TRUSTED_HOST = re.compile(r"\*|\.?[a-z0-9]([a-z0-9.-]{0,252})|\[[0-9a-f:.]{2,45}\]")


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace(".", "_").replace("-", "_")


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return _flatten(tomllib.load(handle))
    except FileNotFoundError:
        raise ConfigError(f"settings file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {path} is not valid TOML: {exc}") from None


def _coerce(key: str, raw: Any, like: Any) -> Any:
    """Convert an override (often an environment string) to the type of the default."""
    if isinstance(like, (list, tuple)):  # a list: a TOML array, or in the environment comma-separated text
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
            raise ConfigError(f"setting {key} must be a list of strings, got {raw!r}")
        return [item.strip() for item in items if item.strip()]
    if isinstance(like, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"setting {key} must be true or false, got {raw!r}")
    if isinstance(like, int):
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {key} must be an integer, got {raw!r}") from None
    if isinstance(like, float):
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {key} must be a number, got {raw!r}") from None
    return str(raw)


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def publish_type(self, service: Service | str) -> PublishType:
        return self.values[f"publish-type.{Service(service).value}"]

    @property
    def kafka_in_use(self) -> bool:
        return any(self.publish_type(s) is PublishType.KAFKA for s in SERVICES)

    def with_overrides(self, overrides: Mapping[str, Any]) -> "Settings":
        return load_settings(overrides, base=self)


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    base: Settings | None = None,
) -> Settings:
    environ = os.environ if environ is None else environ
    if base is None:
        values = _read(DEFAULT_FILE)
        extra = environ.get(ENV_PREFIX + "CONFIG")
        layers = [_read(Path(extra))] if extra else []
        layers.append({key: environ[env_name(key)] for key in values if env_name(key) in environ})
    else:
        values = {k: (v.value if isinstance(v, Enum) else v) for k, v in base.values.items()}
        layers = []
    layers.append(dict(overrides or {}))
    for layer in layers:
        for key, raw in layer.items():
            if key not in values:
                raise ConfigError(f"unknown setting {key}")
            values[key] = _coerce(key, raw, values[key])
    return Settings(_validate(values))


#: Every numeric limit, checked once here at start-up (no module checks a setting again).
LOWER_BOUNDS = {
    "kafka.topic.partitions": 1,
    "kafka.topic.replication-factor": 1,
    "kafka.producer.send-timeout-ms": 100,  # below that no broker round trip fits
    "kafka.producer.linger-ms": 0,
    "kafka.consumer.max-records": 1,
    "kafka.consumer.metadata-max-age-ms": 1,
    "kafka.consumer.store-retries": 0,
    "feign.retry.attempts": 1,
    "feign.retry.backoff-s": 0,
    "feign.retry.factor": 1,  # a pause that shrinks after each failure would hammer a struggling service
    "circuit.window-size": 1,
    "circuit.minimum-calls": 1,
    "deadletters.lease-s": 1,
    "deadletters.retention-days": 0,
    "tasks.lease-s": 2,
    "outbox.batch": 1,
    "outbox.lease-s": 1,
    "server.threads": 1,
    "server.port": 0,
    "server.activity-port": 0,
    "server.shutdown.drain-s": 0,
    "redrive.max-passes": 1,
}
POSITIVE = (
    "feign.connect-timeout-s",
    "feign.read-timeout-s",
    "circuit.open-wait-s",
    "tasks.rate",
    "tasks.poll-s",
    "deadletters.retention-interval-s",
    "kafka.consumer.poll-ttl-s",
    "kafka.consumer.consume-ttl-s",
    "server.shutdown.timeout-s",
    "redrive.interval-s",
    "redrive.rate",
    "redrive.backoff-max-s",
    "outbox.grace-s",
    "outbox.interval-s",
)


def _validate(values: dict[str, Any]) -> dict[str, Any]:
    for service in SERVICES:
        key = f"publish-type.{service.value}"
        raw = str(values[key]).strip().lower()
        try:
            values[key] = PublishType(raw)
        except ValueError:
            raise ConfigError(
                f"setting {key} ({env_name(key)}) is {values[key]!r}; allowed values: "
                f"{', '.join(p.value for p in PublishType)} (case-insensitive)"
            ) from None
    uri = values["mongo.uri"]
    if not (uri.startswith("mongomock://") or uri.startswith("mongodb://") or uri.startswith("mongodb+srv://")):
        raise ConfigError(f"setting mongo.uri must start with mongomock:// or mongodb://, got {uri!r}")
    try:
        ZoneInfo(values["kafka.topic.timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        zone = values["kafka.topic.timezone"]
        raise ConfigError(f"setting kafka.topic.timezone: unknown time zone {zone!r}") from None
    for key, low in LOWER_BOUNDS.items():
        if values[key] < low:
            raise ConfigError(f"setting {key} ({env_name(key)}) must be at least {low}, got {values[key]}")
    for key in POSITIVE:
        if values[key] <= 0:
            raise ConfigError(f"setting {key} ({env_name(key)}) must be greater than 0, got {values[key]}")
    if values["feign.retry.max-backoff-s"] < values["feign.retry.backoff-s"]:
        raise ConfigError(
            f"setting feign.retry.max-backoff-s ({env_name('feign.retry.max-backoff-s')}) must be at "
            f"least feign.retry.backoff-s ({values['feign.retry.backoff-s']}), "
            f"got {values['feign.retry.max-backoff-s']}"
        )
    if values["kafka.producer.linger-ms"] >= values["kafka.producer.send-timeout-ms"]:
        raise ConfigError(
            f"setting kafka.producer.linger-ms ({env_name('kafka.producer.linger-ms')}) must be less than "
            f"kafka.producer.send-timeout-ms ({values['kafka.producer.send-timeout-ms']}): a send waits that long "
            f"before it is sent, got {values['kafka.producer.linger-ms']}"
        )
    if not 0 < values["circuit.failure-rate"] <= 1:
        raise ConfigError("setting circuit.failure-rate must be in (0, 1]")
    values["kafka.event-loop"] = _event_loop(values["kafka.event-loop"])
    values["log.format"] = str(values["log.format"]).strip().lower()
    if values["log.format"] not in LOG_FORMATS:
        raise ConfigError(
            f"setting log.format ({env_name('log.format')}) is {values['log.format']!r}; allowed "
            f"values: {', '.join(LOG_FORMATS)}"
        )
    values["log.level"] = str(values["log.level"]).strip().upper()
    if values["log.level"] not in LOG_LEVELS:
        raise ConfigError(f"setting log.level is {values['log.level']!r}; allowed values: {', '.join(LOG_LEVELS)}")
    if values["metrics.deadletters-cache-s"] < 0:
        raise ConfigError("setting metrics.deadletters-cache-s must not be negative")
    if values["metrics.lag-interval-s"] <= 0:
        raise ConfigError("setting metrics.lag-interval-s must be positive")
    values["server.trusted-hosts"] = _trusted_hosts(values["server.trusted-hosts"])
    if values["server.shutdown.drain-s"] >= values["server.shutdown.timeout-s"]:
        raise ConfigError(
            "setting server.shutdown.drain-s must be less than server.shutdown.timeout-s (the drain is "
            "part of the shutdown's deadline)"
        )
    if values["redrive.backoff-max-s"] < values["redrive.interval-s"]:
        raise ConfigError("setting redrive.backoff-max-s must be at least redrive.interval-s")
    if len(values["auth.jwt-secret"]) < 32:
        raise ConfigError("setting auth.jwt-secret must be at least 32 characters")
    return values


def _event_loop(raw: Any) -> str:
    name = str(raw).strip().lower()
    if name not in EVENT_LOOPS:
        raise ConfigError(
            f"setting kafka.event-loop ({env_name('kafka.event-loop')}) is {name!r}; allowed values: "
            f"{', '.join(EVENT_LOOPS)}"
        )
    if name == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ConfigError(
            f"setting kafka.event-loop is uvloop, but uvloop is not installed (pip install uvloop, or set "
            f"{env_name('kafka.event-loop')}=asyncio)"
        )
    return name


def _trusted_hosts(hosts: list[str]) -> tuple[str, ...]:
    cleaned = tuple(dict.fromkeys(host.strip().lower() for host in hosts))
    for host in cleaned:
        if not TRUSTED_HOST.fullmatch(host):
            raise ConfigError(
                f"setting server.trusted-hosts ({env_name('server.trusted-hosts')}): {host!r} is not a "
                "host name, an IPv4 address, an IPv6 address in brackets or *; give no port"
            )
    if not cleaned:
        raise ConfigError("setting server.trusted-hosts must name at least one host (or * for any)")
    return cleaned
