"""The admin API's OpenAPI document (issue #14): it is valid OpenAPI 3.1, and every answer of every
documented route, success and refusal, is checked against it as a real node gives it (a plain
node, one with ACME against Pebble, one in a cluster against etcd). Schemas forbid unknown fields
and require every field, so an answer that gains, loses or retypes a field fails here until the
document says the same."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_openapi

from conftest import free_port, standard_tls, wait_for_port
from reload_support import Admin, wait_until

TOKEN = "openapi-test-token-0123456789"
CHECK = {"path": "/status?code=200", "interval": "200ms", "timeout": "1s", "rise": 1, "fall": 1}

# Which test answers which operation; together they must be every operation the document has.
PLAIN = {("get", "/healthz"), ("get", "/metrics"), ("get", "/status"), ("get", "/traffic"), ("get", "/certificates"),
         ("get", "/certificates/{name}"), ("put", "/certificates/{name}"), ("delete", "/certificates/{name}"),
         ("post", "/reload"), ("get", "/upstreams"), ("get", "/openapi.json"), ("get", "/dashboard"),
         ("post", "/dashboard/login"), ("get", "/"), ("get", "/acme"), ("post", "/acme/renew/{name}"),
         ("post", "/acme/revoke/{name}"), ("get", "/cluster")}


class Checker:
    """Checks answers against the document; remembers which (operation, status) it saw."""

    def __init__(self, admin: Admin):
        self.admin = admin
        status, headers, body = admin.request("GET", "/openapi.json")
        assert status == 200 and headers["content-type"] == "application/json", (status, headers)
        self.doc = json.loads(body)
        self.seen: set[tuple[str, str, int]] = set()

    def call(self, method: str, template: str, path: str | None = None, body: bytes | None = None,
             expect: int = 200, **kw) -> tuple[dict, object]:
        status, headers, data = self.admin.request(method, path or template, body, **kw)
        assert status == expect, (method, path or template, status, data[:300])
        operation = self.doc["paths"].get(template, {}).get(method.lower())
        assert operation, f"{method} {template} is not in openapi.json"
        documented = operation["responses"].get(str(status))
        assert documented, f"{method} {template} answered {status}, which openapi.json does not list"
        self.seen.add((method.lower(), template, status))
        content = documented.get("content")
        if not content:
            return headers, data
        ctype = headers["content-type"].split(";")[0]
        assert ctype in content, f"{method} {template} {status}: {ctype}, documented {list(content)}"
        if ctype != "application/json":
            return headers, data.decode()
        value = json.loads(data)
        # The components travel with the schema, so "#/components/schemas/X" resolves.
        schema = {**content[ctype]["schema"], "components": self.doc["components"]}
        errors = sorted(Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(value), key=str)
        assert not errors, f"{method} {path or template} {status} does not match openapi.json:\n" + "\n".join(
            f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:10])
        return headers, value

    def operations(self) -> set[tuple[str, str]]:
        return {(m, t) for m, t, _ in self.seen}


def documented_operations(doc: dict) -> set[tuple[str, str]]:
    return {(m, p) for p, item in doc["paths"].items() for m in item if m != "parameters"}


def test_the_document_is_valid_openapi_and_every_operation_has_a_test(proxies):
    port = free_port()
    proxies({"tls": standard_tls(), "admin": {"listen": f"127.0.0.1:{port}"}})
    doc = Checker(Admin(port)).doc
    validate_openapi(doc)  # raises with the offending part
    assert doc["openapi"].startswith("3.1")
    missing = documented_operations(doc) - PLAIN - ACME - CLUSTER
    assert not missing, f"operations without a test here: {sorted(missing)}"
    stale = (PLAIN | ACME | CLUSTER) - documented_operations(doc)
    assert not stale, f"tested operations openapi.json does not have: {sorted(stale)}"


def test_every_answer_of_a_plain_node_matches_the_document(proxies, origins, pki):
    origin = origins("app")
    port = free_port()
    p = proxies({"tls": standard_tls(), "admin": {"listen": f"127.0.0.1:{port}", "token": TOKEN},
                 "upstreams": {"app": {"servers": [origin.addr], "health_check": CHECK},
                               "spare": {"servers": ["127.0.0.1:9"]}},
                 "routes": [{"upstream": "app"}], "log": {"access": "off"}})
    wait_for_port(port)
    api = Checker(Admin(port, TOKEN))
    api.call("GET", "/healthz")
    api.call("GET", "/metrics")
    api.call("GET", "/openapi.json")
    api.call("GET", "/status")
    api.call("GET", "/traffic")
    wait_until(lambda: all(c["checked"] for c in api.admin.json("GET", "/certificates")[1]), 20, what="certificates checked")
    _, listing = api.call("GET", "/certificates")
    assert {"a.test", "c.test"} <= {c["name"] for c in listing}
    api.call("GET", "/certificates/{name}", "/certificates/a.test")
    api.call("GET", "/certificates/{name}", "/certificates/nothing.test", expect=404)
    leaf = pki.issue(["new.test"])
    api.call("PUT", "/certificates/{name}", "/certificates/new.test", leaf.chain_pem + leaf.key_pem)
    api.call("PUT", "/certificates/{name}", "/certificates/new.test", b"garbage", expect=422)
    api.call("DELETE", "/certificates/{name}", "/certificates/new.test")
    api.call("DELETE", "/certificates/{name}", "/certificates/new.test", expect=404)
    _, reload = api.call("POST", "/reload")
    assert reload["refused"] == []
    good = p.config_path.read_text()
    p.config_path.write_text(good + "typo: 1\n")
    _, refused = api.call("POST", "/reload", expect=422)
    assert "typo" in refused["error"]
    p.config_path.write_text(good)
    # Both kinds of server: one checked (with its last check), one without a health_check.
    wait_until(lambda: all(s["checks"] >= 1 for u in api.admin.json("GET", "/upstreams")[1]["upstreams"]
                           for s in u["servers"] if s["checked"]), 15, what="a health check done")
    _, upstreams = api.call("GET", "/upstreams")
    assert {s["checked"] for u in upstreams["upstreams"] for s in u["servers"]} == {True, False}
    # ACME and the cluster are off here: their refusals are documented too.
    api.call("GET", "/acme", expect=404)
    api.call("POST", "/acme/renew/{name}", "/acme/renew/a.test", expect=404)
    api.call("POST", "/acme/revoke/{name}", "/acme/revoke/a.test", expect=404)
    api.call("GET", "/cluster", expect=404)
    # The token: refused without it, in the documented shape.
    api.call("GET", "/status", expect=401, token="")
    api.call("GET", "/certificates", expect=401, token="wrong-wrong-wrong")
    # The dashboard: a login form until signed in, then the page.
    api.call("GET", "/dashboard", expect=401, token="")
    api.call("POST", "/dashboard/login", body=b"token=wrong", expect=401, token="",
             headers={"Content-Type": "application/x-www-form-urlencoded"})
    headers, _ = api.call("POST", "/dashboard/login", body=f"token={TOKEN}".encode(), expect=303, token="",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    cookie = headers["set-cookie"].split(";")[0]
    api.call("GET", "/dashboard", "/dashboard?token=" + TOKEN, expect=303, token="")
    _, page = api.call("GET", "/dashboard", token="", headers={"Cookie": cookie})
    assert "<title>edgeproxy dashboard</title>" in page
    api.call("GET", "/", token="", headers={"Cookie": cookie})
    assert api.operations() == PLAIN


ACME = {("get", "/acme"), ("post", "/acme/renew/{name}"), ("post", "/acme/revoke/{name}"), ("get", "/status")}


def test_acme_answers_match_the_document(proxies, tmp_path):
    from pebble import Pebble, available
    assert available(), "pebble / pebble-challtestsrv are missing: apt-get install pebble (make test installs it)"
    ports = {"https": free_port(), "http": free_port(), "admin": free_port()}
    pebble = Pebble(tmp_path / "pebble", ports["http"], ports["https"])
    try:
        proxies({"listen": {"https": [f"127.0.0.1:{ports['https']}"], "http": [f"127.0.0.1:{ports['http']}"]},
                 "admin": {"listen": f"127.0.0.1:{ports['admin']}"},
                 "acme": pebble.acme_section(["openapi.acme.test"], challenges=["http-01"]),
                 "routes": [{"respond": {"status": 200, "body": "hello\n", "content_type": "text/plain"}}],
                 "log": {"access": "off"}}, standard_certs=False)
        wait_for_port(ports["admin"])
        api = Checker(Admin(ports["admin"]))
        serial = lambda: api.admin.json("GET", "/acme")[1]["certificates"][0]["serial"]
        first = wait_until(serial, 60, interval=0.2, what="openapi.acme.test issued")
        _, acme = api.call("GET", "/acme")
        assert acme["certificates"][0]["name"] == "openapi.acme.test" and acme["certificates"][0]["issued"] == 1
        _, status = api.call("GET", "/status")
        assert status["acme"] == {"managed": 1, "failing": 0}
        api.call("POST", "/acme/renew/{name}", "/acme/renew/openapi.acme.test", expect=202)
        api.call("POST", "/acme/renew/{name}", "/acme/renew/other.acme.test", expect=404)
        second = wait_until(lambda: (s := serial()) != first and s, 60, interval=0.2, what="renewed")
        _, revoked = api.call("POST", "/acme/revoke/{name}", "/acme/revoke/openapi.acme.test?reason=superseded")
        assert revoked["revoked"] == second
        api.call("POST", "/acme/revoke/{name}", "/acme/revoke/openapi.acme.test?reason=cACompromise", expect=400)
        wait_until(lambda: serial() not in (first, second), 60, interval=0.2, what="replaced after revocation")
        api.call("GET", "/acme")
        assert api.operations() == ACME
    finally:
        pebble.stop()


CLUSTER = {("get", "/cluster"), ("get", "/status"), ("put", "/certificates/{name}"), ("delete", "/certificates/{name}")}


def test_cluster_answers_match_the_document(proxies, tmp_path, pki):
    from etcd import EtcdCluster, new_sealing_key, node_config
    etcd = EtcdCluster(tmp_path / "etcd", members=1)
    try:
        port = free_port()
        proxies(node_config(etcd, "/openapi-test/", "openapi-node", [new_sealing_key(tmp_path)], port), standard_certs=False)
        wait_for_port(port)
        api = Checker(Admin(port))
        wait_until(lambda: api.admin.json("GET", "/cluster")[1]["nodes"], 15, what="the node registered in etcd")
        _, cluster = api.call("GET", "/cluster")
        assert [n["node"] for n in cluster["nodes"]] == ["openapi-node"]
        _, status = api.call("GET", "/status")
        assert status["cluster"]["node"] == "openapi-node"
        leaf = pki.issue(["fleet.test"])
        api.call("PUT", "/certificates/{name}", "/certificates/fleet.test", leaf.chain_pem + leaf.key_pem)
        _, deleted = api.call("DELETE", "/certificates/{name}", "/certificates/fleet.test")
        assert deleted == {"deleted": "fleet.test", "cluster": True}
        assert api.operations() == CLUSTER
    finally:
        etcd.stop()
