"""Who is calling: the App Service principal header, the function key's roles, and what each role may do."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from aos_core.auth import PRINCIPAL_HEADER, AuthError, Caller, identify, parse_principal
from aos_core.config import AuthSettings

MS_ROLE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
TRUSTED = AuthSettings(trust_principal_header=True)


def header(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def claims(*pairs: tuple[str, Any], **extra: Any) -> str:
    return header({"auth_typ": "aad", "claims": [{"typ": t, "val": v} for t, v in pairs], **extra})


def test_the_name_claim_names_the_caller_wherever_it_stands() -> None:
    caller = parse_principal(claims(("iss", "https://login.example"), ("name", "ada@example.com"),
                                    ("name", "second name"), ("roles", "reader")))
    assert caller == Caller(name="ada@example.com", roles=frozenset({"reader"}), via="principal")


def test_a_custom_name_claim_type_is_honoured() -> None:
    caller = parse_principal(claims(("name", "not this"), ("preferred_username", "ada"),
                                    name_typ="preferred_username"))
    assert caller.name == "ada"


def test_without_a_name_the_user_id_then_a_placeholder_names_the_caller() -> None:
    assert parse_principal(claims(("roles", "reader"), userId="u-42")).name == "u-42"
    assert parse_principal(claims(("roles", "reader"))).name == "principal"


def test_roles_come_from_the_roles_claim_the_microsoft_role_uri_and_a_custom_role_type() -> None:
    caller = parse_principal(claims(("roles", "reader"), (MS_ROLE, "operator"), ("groups", "admin")))
    assert caller.roles == {"reader", "operator"}  # a group is not a role
    custom = parse_principal(claims(("app_role", "admin"), ("roles", "reader"), role_typ="app_role"))
    assert custom.roles == {"admin", "reader"}
    assert custom.can("admin")


def test_a_principal_without_claims_has_no_roles() -> None:
    assert parse_principal(header({"userId": "u-7"})) == Caller("u-7", frozenset(), "principal")


def test_a_header_wrapped_over_lines_is_still_read() -> None:
    wrapped = claims(("name", "ada"), ("roles", "reader"))
    assert parse_principal("\n".join(wrapped[i:i + 16] for i in range(0, len(wrapped), 16))).name == "ada"


def test_claims_that_are_not_name_value_pairs_are_skipped() -> None:
    caller = parse_principal(header({"claims": ["roles", {"typ": "roles", "val": ["admin"]}, {"typ": "roles"},
                                                {"typ": "roles", "val": "reader"}]}))
    assert caller.roles == {"reader"}


@pytest.mark.parametrize("value", ["not base64 json!", base64.b64encode(b"\xff\xfe").decode(),
                                   base64.b64encode(b"{nope").decode()])
def test_a_header_that_is_not_base64_json_is_an_auth_error(value: str) -> None:
    with pytest.raises(AuthError, match=r"^X-MS-CLIENT-PRINCIPAL is not base64-encoded JSON$"):
        parse_principal(value)


@pytest.mark.parametrize("value", [[{"typ": "roles", "val": "admin"}], "admin", 7, None, {"claims": "admin"},
                                   {"claims": {"typ": "roles"}}])
def test_json_that_is_not_an_object_with_a_claims_list_is_an_auth_error(value: Any) -> None:
    with pytest.raises(AuthError, match=r"^X-MS-CLIENT-PRINCIPAL must be a JSON object with a claims list$"):
        parse_principal(header(value))


def test_a_deeply_nested_header_is_an_auth_error_not_a_crash() -> None:
    with pytest.raises(AuthError):
        parse_principal(base64.b64encode(b"[" * 5000 + b"]" * 5000).decode())


def test_each_role_includes_the_ones_before_it() -> None:
    def can(*roles: str) -> list[str]:
        caller = Caller("c", frozenset(roles), "key")
        return [role for role in ("reader", "operator", "admin") if caller.can(role)]

    assert can("reader") == ["reader"]
    assert can("operator") == ["reader", "operator"]
    assert can("admin") == ["reader", "operator", "admin"]
    assert can() == [] and can("owner", "Reader") == []  # unknown roles grant nothing


def test_a_key_caller_gets_the_configured_roles_split_on_commas() -> None:
    caller = identify({}, AuthSettings(key_roles=" reader, operator ,,"))
    assert caller == Caller(name="function-key", roles=frozenset({"reader", "operator"}), via="key")
    assert identify({}, AuthSettings()).roles == {"admin"}


def test_an_anonymous_route_without_a_principal_has_no_roles() -> None:
    assert identify({}, AuthSettings(), anonymous=True) == Caller("anonymous", frozenset(), "anonymous")


def test_the_principal_header_decides_only_when_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = {PRINCIPAL_HEADER: claims(("name", "ada"), ("roles", "reader"))}
    assert identify(headers, TRUSTED, anonymous=True).via == "principal"
    assert identify(headers, AuthSettings(trust_principal_header=False)).via == "key"
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    assert identify(headers, AuthSettings()).via == "key"  # a caller could have set it: not trusted
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")  # App Service authentication strips callers' copies
    assert identify(headers, AuthSettings()) == Caller("ada", frozenset({"reader"}), "principal")
    assert identify(headers, AuthSettings(trust_principal_header=False)).via == "key"  # the setting wins
    assert identify({PRINCIPAL_HEADER: ""}, AuthSettings()).via == "key"


def test_a_malformed_trusted_header_is_refused_not_ignored() -> None:
    with pytest.raises(AuthError):
        identify({PRINCIPAL_HEADER: header(["admin"])}, TRUSTED, anonymous=True)
