from __future__ import annotations

import pytest

from aos_core.errors import ConfigError
from services.devhost.routes import Router, RouteTemplate


@pytest.mark.parametrize(("template", "path", "params"), [
    ("agents/{agent_id}", "agents/ceo", {"agent_id": "ceo"}),
    ("agents/{agent_id}", "agents", None),
    ("items/{id:int}", "items/-7", {"id": "-7"}),
    ("items/{id:int}", "items/7.5", None),
    ("items/{id:int}", "items/\u0661\u0662", None),  # Arabic-Indic digits are no invariant-culture number
    ("items/{id:range(1,20)}", "items/\u0661\u0662", None),
    ("prices/{p:double}", "prices/-1.5e3", {"p": "-1.5e3"}),
    ("prices/{p:double}", "prices/\u0661.5", None),
    ("prices/{p:double}", "prices/1_000", None),  # Python's float() reads it, ASP.NET does not
    ("items/{id:int:min(10)}", "items/9", None),
    ("items/{id:int:range(1,5)}", "items/5", {"id": "5"}),
    ("code/{c:length(3)}", "code/abcd", None),
    ("code/{c:regex(^[a-f]+$)}", "code/BEEF", {"c": "BEEF"}),
    ("ids/{g:guid}", "ids/6f1c6b3e-1f7e-4d6a-9a57-1b8f2d1c0e11", {"g": "6f1c6b3e-1f7e-4d6a-9a57-1b8f2d1c0e11"}),
    ("flags/{f:bool}", "flags/TRUE", {"f": "TRUE"}),
    ("opt/{name?}", "opt", {}),
    ("def/{name=all}", "def", {"name": "all"}),
    ("files/{*rest}", "files/a/b/c", {"rest": "a/b/c"}),
    ("files/{*rest}", "files", {}),
    ("Events/{id}", "events/E1", {"id": "E1"}),
    ("a/{x}", "a/one%2Ftwo", {"x": "one/two"}),
    ("a/{x}", "a/1/2", None),
])
def test_templates(template: str, path: str, params: dict[str, str] | None) -> None:
    assert RouteTemplate.parse(template).match(path) == params


@pytest.mark.parametrize("template", ["a/{x", "a/{x}/{x}", "a/{*rest}/b", "a/{x:nonsense}", "a/{x:min(a)}"])
def test_bad_templates_are_config_errors(template: str) -> None:
    with pytest.raises(ConfigError, match="route"):
        RouteTemplate.parse(template)


def test_the_most_specific_route_wins_and_methods_are_reported() -> None:
    router = Router()
    router.add("items/{*rest}", None, "catch-all")
    router.add("items/{id}", ["GET"], "plain")
    router.add("items/{id:int}", ["GET"], "int")
    router.add("items/new", ["GET"], "literal")
    assert router.find("GET", "items/new")[0].target == "literal"  # type: ignore[union-attr]
    assert router.find("GET", "items/3")[0].target == "int"  # type: ignore[union-attr]
    assert router.find("GET", "items/x")[0].target == "plain"  # type: ignore[union-attr]
    assert router.find("POST", "items/x")[0].target == "catch-all"  # type: ignore[union-attr]
    only_get = Router()
    only_get.add("things", ["GET"], "t")
    route, _, allowed = only_get.find("DELETE", "things")
    assert route is None and allowed == {"GET"}
