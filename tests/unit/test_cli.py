"""The `dailyfeed` command: tokens, and a start-up that refuses bad settings with a message naming them."""

import jwt
from click.testing import CliRunner

from dailyfeed.cli import main
from dailyfeed.config import load_settings


def test_token_prints_a_jwt_for_the_member_signed_with_the_configured_secret():
    result = CliRunner().invoke(main, ["token", "--member", "7"])
    assert result.exit_code == 0, result.output
    claims = jwt.decode(
        result.output.strip(),
        load_settings()["auth.jwt-secret"],
        algorithms=["HS256"],
        options={"verify_sub": False, "verify_aud": False},
    )
    assert claims["sub"] == "7" and claims["exp"] > claims["iat"]


def test_token_refuses_a_bad_member_id():
    result = CliRunner().invoke(main, ["token", "--member", "0"])
    assert result.exit_code == 2 and "--member" in result.output


def test_unknown_publish_type_stops_start_up_naming_the_setting():
    result = CliRunner().invoke(main, ["routes"], env={"DAILYFEED_PUBLISH_TYPE_POST_SERVICE": "rabbitmq"})
    assert result.exit_code != 0
    assert "publish-type.post-service" in result.output and "kafka, feign" in result.output


def _claims_of(result):
    assert result.exit_code == 0, result.output
    return jwt.decode(
        result.output.strip(),
        load_settings()["auth.jwt-secret"],
        algorithms=["HS256"],
        options={"verify_sub": False, "verify_aud": False},
    )


def test_token_prints_a_record_scope_service_token_and_an_admin_token():
    service = _claims_of(CliRunner().invoke(main, ["token", "--service"]))
    admin = _claims_of(CliRunner().invoke(main, ["token", "--admin", "--ttl", "60"]))
    assert service["scope"] == "activity:record" and admin["scope"] == "admin"
    assert service["aud"] == "dailyfeed-activity" and "aud" not in admin  # the record endpoints' audience
    assert admin["exp"] - admin["iat"] == 60
    # who acts: the console keeps an admin token's subject on its session; the record calls name the content side
    assert admin["sub"] == "admin" and service["sub"] == "dailyfeed-content"


def test_token_needs_exactly_one_kind():
    for args in (["token"], ["token", "--member", "7", "--admin"], ["token", "--service", "--admin"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "exactly one of --member N, --service, --admin, --viewer" in result.output


def test_named_admin_and_viewer_tokens_carry_the_name_as_their_subject():
    alice = _claims_of(CliRunner().invoke(main, ["token", "--admin", "--name", "alice"]))
    bob = _claims_of(CliRunner().invoke(main, ["token", "--viewer", "--name", "bob"]))
    assert (alice["sub"], alice["scope"]) == ("alice", "admin")
    assert (bob["sub"], bob["scope"]) == ("bob", "admin:read")
    for args, problem in (
        (["token", "--member", "7", "--name", "x"], "--name goes with --admin or --viewer"),
        (["token", "--admin", "--name", " "], "--name must be 1 to 64 printable characters"),
        (["token", "--admin", "--name", "a" * 65], "--name must be 1 to 64"),
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and problem in result.output
