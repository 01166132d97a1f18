"""The plain-HTTP (port 80 role) listener: ACME HTTP-01 path answered locally, everything else
redirected to https."""

from __future__ import annotations

import pytest

from conftest import free_port, standard_tls
from httpclient import HTTPConn, curl

HELLO = {"respond": {"status": 200, "body": "hello\n", "content_type": "text/plain"}}


def http_config(redirect_port=None) -> dict:
    listen = {"https": [f"127.0.0.1:{free_port()}"], "http": [f"127.0.0.1:{free_port()}"]}
    if redirect_port is not None:
        listen["redirect_port"] = redirect_port
    return {"workers": 1, "listen": listen, "tls": standard_tls(), "routes": [HELLO]}


@pytest.fixture(scope="module")
def proxy(module_proxies):
    p = module_proxies(http_config(redirect_port=8443), name="http-port")
    return p


def plain_get(port: int, target: str, host: str | None, method: str = "GET"):
    with HTTPConn.plain(port) as c:
        return c.request(method, target, host=host, headers=[("Connection", "close")])


def test_unknown_acme_challenge_is_404(proxy):
    """GET /.well-known/acme-challenge/<unknown token> on the http port answers 404 (not a redirect)."""
    r = curl(f"http://a.test:{proxy.http_port}/.well-known/acme-challenge/unknown",
             resolve=[("a.test", proxy.http_port)])
    assert r.rc == 0, r.stderr
    assert r.status == 404
    assert "location:" not in r.headers.lower()


def test_other_paths_redirect_to_https_with_redirect_port(proxy):
    """Any other path gets 301 to https://HOST:redirect_port/path (curl, without following)."""
    r = curl(f"http://a.test:{proxy.http_port}/some/path", resolve=[("a.test", proxy.http_port)])
    assert r.rc == 0, r.stderr
    assert r.status == 301
    assert r.transfers[0]["redirect_url"] == "https://a.test:8443/some/path"


def test_redirect_keeps_query_string(proxy):
    """The redirect keeps the query string of the request target."""
    r = plain_get(proxy.http_port, "/p?q=1&r=two", "a.test")
    assert r.status == 301
    assert r.header("location") == "https://a.test:8443/p?q=1&r=two"


def test_redirect_uses_host_without_its_port(proxy):
    """A Host header carrying the http port is redirected to the bare host name plus the https port."""
    r = plain_get(proxy.http_port, "/x", f"example.test:{proxy.http_port}")
    assert r.status == 301
    assert r.header("location") == "https://example.test:8443/x"


def test_head_is_redirected_too(proxy):
    """HEAD requests get the same 301 (without a body)."""
    r = plain_get(proxy.http_port, "/h", "a.test", method="HEAD")
    assert r.status == 301
    assert r.header("location") == "https://a.test:8443/h"


def test_acme_prefix_only_matches_the_challenge_directory(proxy):
    """/.well-known/ paths other than acme-challenge are redirected like anything else."""
    r = plain_get(proxy.http_port, "/.well-known/security.txt", "a.test")
    assert r.status == 301
    assert r.header("location") == "https://a.test:8443/.well-known/security.txt"


def test_port_443_is_omitted_from_redirect(proxies):
    """redirect_port 443 → Location has no port: https://HOST/path."""
    p = proxies(http_config(redirect_port=443))
    r = plain_get(p.http_port, "/a/b", "a.test")
    assert r.status == 301
    assert r.header("location") == "https://a.test/a/b"


def test_redirect_port_defaults_to_first_https_port(proxies):
    """Without redirect_port the redirect points at the first https listener's port."""
    p = proxies(http_config())
    r = plain_get(p.http_port, "/d", "a.test")
    assert r.status == 301
    assert r.header("location") == f"https://a.test:{p.https_port}/d"


def test_http_port_does_not_proxy(proxies, origins):
    """The http listener never forwards to upstreams: a proxied route still answers 301 there."""
    o = origins("H")
    cfg = http_config(redirect_port=8443)
    cfg["upstreams"] = {"app": {"servers": [o.addr]}}
    cfg["routes"] = [{"upstream": "app"}]
    p = proxies(cfg)
    r = plain_get(p.http_port, "/echo", "a.test")
    assert r.status == 301
    assert o.stats()["requests"] == 0
