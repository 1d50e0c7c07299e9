"""Settings: files, environment overrides, and start-up validation that names the setting."""

import pytest

from dailyfeed.config import ConfigError, PublishType, env_name, load_settings


def test_defaults_are_the_embedded_setup():
    settings = load_settings(environ={})
    assert settings["mongo.uri"] == "mongomock://"
    assert settings.publish_type("post-service") is PublishType.FEIGN
    assert settings["kafka.topic.prefix"] == "member-activity-"
    assert settings["kafka.topic.partitions"] == 6
    assert settings["kafka.consumer.group-id"] == "member-activity-consumer-group-activity-svc"


def test_environment_overrides_with_type_conversion():
    environ = {env_name("publish-type.post-service"): "KAFKA", "DAILYFEED_KAFKA_TOPIC_PARTITIONS": "3"}
    settings = load_settings(environ=environ)
    assert settings.publish_type("post-service") is PublishType.KAFKA
    assert settings["kafka.topic.partitions"] == 3
    assert settings.kafka_in_use


def test_env_name_mapping():
    assert env_name("publish-type.comment-service") == "DAILYFEED_PUBLISH_TYPE_COMMENT_SERVICE"
    assert env_name("kafka.bootstrap-servers") == "DAILYFEED_KAFKA_BOOTSTRAP_SERVERS"


def test_unknown_publish_type_is_a_start_up_error_naming_setting_and_values():
    with pytest.raises(ConfigError) as err:
        load_settings({"publish-type.comment-service": "rabbit"}, environ={})
    message = str(err.value)
    assert "publish-type.comment-service" in message and "kafka" in message and "feign" in message


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("kafka.topic.partitions", "many", "must be an integer"),
        ("kafka.topic.partitions", 0, "at least 1"),
        ("mongo.uri", "postgres://x", "mongo.uri"),
        ("kafka.topic.timezone", "Mars/Base", "time zone"),
        ("auth.jwt-secret", "short", "at least 32"),
        (
            "kafka.producer.send-timeout-ms",
            99,
            r"kafka.producer.send-timeout-ms \(DAILYFEED_KAFKA_PRODUCER_SEND_TIMEOUT_MS\) must be at least 100",
        ),
        ("kafka.producer.linger-ms", -1, "must be at least 0"),
        (
            "kafka.producer.linger-ms",
            5000,
            r"kafka.producer.linger-ms \(DAILYFEED_KAFKA_PRODUCER_LINGER_MS\) must be less than",
        ),
        ("kafka.consumer.store-retries", -1, "must be at least 0"),
        ("kafka.consumer.max-records", 0, "must be at least 1"),
        ("feign.read-timeout-s", 0, "greater than 0"),
        ("feign.retry.factor", 0.5, r"feign.retry.factor \(DAILYFEED_FEIGN_RETRY_FACTOR\) must be at least 1"),
        ("feign.retry.max-backoff-s", 0.1, "must be at least feign.retry.backoff-s"),
    ],
)
def test_bad_values_are_rejected(key, value, problem):
    with pytest.raises(ConfigError, match=problem):
        load_settings({key: value}, environ={})


def test_unknown_setting_is_rejected():
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings({"publish-type.user-service": "kafka"}, environ={})


def test_settings_file_layer(tmp_path):
    extra = tmp_path / "prod.toml"
    extra.write_text('[publish-type]\npost-service = "kafka"\n')
    settings = load_settings(environ={"DAILYFEED_CONFIG": str(extra)})
    assert settings.publish_type("post-service") is PublishType.KAFKA


def test_readme_documents_every_setting_and_its_environment_variable():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [key for key in load_settings(environ={}).values if f"| `{key}` | `{env_name(key)}` |" not in readme]
    assert missing == [], f"README settings table lacks {missing}"


def test_trusted_hosts_come_from_a_list_or_comma_separated_text_and_are_checked():
    from dailyfeed.hosts import host_trusted, trusted_hosts

    assert load_settings(environ={})["server.trusted-hosts"] == ("localhost", "127.0.0.1", "[::1]")
    settings = load_settings(environ={"DAILYFEED_SERVER_TRUSTED_HOSTS": " Feed.Example, .internal.example ,"})
    assert settings["server.trusted-hosts"] == ("feed.example", ".internal.example")
    with_own = load_settings(
        {"activity.base-url": "http://[::1]:5001", "server.trusted-hosts": ["a.example"]}, environ={}
    )
    assert trusted_hosts(with_own) == ("a.example", "[::1]")  # the app's own address is always trusted
    for bad in ("localhost:5000", "http://x", "a b", "", "é.example"):
        with pytest.raises(ConfigError, match="server.trusted-hosts"):
            load_settings({"server.trusted-hosts": bad}, environ={})
    trusted = ("localhost", "[::1]", ".internal.example")
    assert [host_trusted(h, trusted) for h in ("localhost:1", "[::1]:5000", "a.internal.example", None)] == [True] * 4
    assert [
        host_trusted(h, trusted)
        for h in (
            "evil",
            "localhost.evil",
            "localhost:0",
            "localhost:70000",
            "[::2]",
            "xinternal.example",
            "localhost:5000:1",
            "",
        )
    ] == [False] * 8
    assert host_trusted("anything.example", ("*",))


def test_the_apps_own_address_is_configuration_or_where_it_binds():
    from dailyfeed.hosts import bound_url, own_base_url

    assert own_base_url(load_settings(environ={})) == "http://127.0.0.1:5000"
    assert (
        own_base_url(load_settings({"server.host": "0.0.0.0", "server.port": 8000}, environ={}))
        == "http://127.0.0.1:8000"
    )
    assert (
        own_base_url(load_settings({"activity.base-url": "https://activity.internal"}, environ={}))
        == "https://activity.internal"
    )
    assert bound_url("::", 5001) == "http://[::1]:5001" and bound_url("::1", 80, "https") == "https://[::1]:80"
