"""The command line (issue #14): every subcommand of the real binary against a real running node's
admin API, as a table for people and as JSON for scripts, and its errors: the admin API off,
unreachable, a missing or wrong token, unknown names, bad files. ACME subcommands run against a
real Pebble, `cluster status` against a real etcd.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

from conftest import free_port, standard_tls, to_yaml, wait_for_port
from httpclient import handshake_cert
from reload_support import Admin, wait_until

TOKEN = "cli-test-token-0123456789"
SUBCOMMANDS = [[], ["run"], ["check"], ["status"], ["certs"], ["certs", "list"], ["certs", "show"], ["certs", "add"],
               ["certs", "remove"], ["reload"], ["acme"], ["acme", "status"], ["acme", "renew"], ["acme", "revoke"],
               ["cluster"], ["cluster", "status"], ["cluster", "import"], ["cluster", "reseal"], ["version"]]


def cli(binary, *args, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def ok(binary, *args, **kw) -> str:
    r = cli(binary, *args, **kw)
    assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stderr}"
    return r.stdout


def fails(binary, *args, code: int = 1, **kw) -> str:
    """The command fails with `code`, nothing on stdout; returns stderr."""
    r = cli(binary, *args, **kw)
    assert r.returncode == code, f"{args}: exit {r.returncode}, expected {code}\n{r.stdout}\n{r.stderr}"
    assert r.stdout == "", r.stdout
    return r.stderr


def rows(table: str) -> list[list[str]]:
    """A table's lines split on runs of two or more spaces (cells hold single spaces)."""
    return [re.split(r" {2,}", line.strip()) for line in table.strip().splitlines()]


def fields(text: str) -> dict[str, str]:
    return {r[0]: r[1] if len(r) > 1 else "" for r in rows(text)}


@pytest.fixture(scope="module")
def node(module_proxies):
    port = free_port()
    # No directory watch: a file written by a test reaches the node through `reload` only.
    config = {"tls": standard_tls(watch=False), "admin": {"listen": f"127.0.0.1:{port}", "token": TOKEN},
              "routes": [{"respond": {"status": 200, "body": "ok\n", "content_type": "text/plain"}}],
              "log": {"access": "off"}}
    p = module_proxies(config)
    wait_for_port(port)  # the admin API opens just after the https listener the fixture waited for
    admin = Admin(port, TOKEN)
    wait_until(lambda: all(c["checked"] for c in admin.json("GET", "/certificates")[1]), 20, what="certificates checked")
    return p, admin, port


# ----- the binary itself ----------------------------------------------------------------------

def test_version_names_the_commit_and_the_libraries(edgeproxy_bin):
    info = json.loads(ok(edgeproxy_bin, "version", "--json"))
    assert set(info) == {"version", "commit", "openssl", "nghttp2"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", info["version"])
    assert re.fullmatch(r"[0-9a-f]{7,40}(-dirty)?|unknown", info["commit"]), info
    # The libraries it runs with, as the system reports them.
    library = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout
    assert info["openssl"].startswith("OpenSSL 3.") and info["openssl"] in library, (info, library)
    nghttp2 = subprocess.run(["pkg-config", "--modversion", "libnghttp2"], capture_output=True, text=True).stdout.strip()
    assert info["nghttp2"] == nghttp2
    table = ok(edgeproxy_bin, "version")
    assert table == ok(edgeproxy_bin, "--version")
    assert table.splitlines() == [f"edgeproxy {info['version']} (commit {info['commit']})", info["openssl"], f"nghttp2 {info['nghttp2']}"]


@pytest.mark.parametrize("path", SUBCOMMANDS, ids=lambda p: " ".join(p) or "edgeproxy")
def test_help_everywhere(edgeproxy_bin, path):
    text = ok(edgeproxy_bin, *path, "--help")
    assert f"USAGE: edgeproxy {' '.join(path)}".rstrip() in text, text
    if path in (["certs"], ["acme"], ["cluster"]):
        assert "SUBCOMMANDS:" in text
    if path[:1] in (["status"], ["reload"]) or path[1:] in (["status"], ["list"], ["show"], ["add"], ["remove"], ["renew"], ["revoke"]):
        assert "--admin <url>" in text and "--token <token>" in text and "--json" in text and "--config <file>" in text


def test_completion_scripts(edgeproxy_bin):
    for shell, marker in (("bash", "-F _edgeproxy edgeproxy"), ("zsh", "#compdef edgeproxy"), ("fish", "complete -c 'edgeproxy'")):
        script = ok(edgeproxy_bin, "--generate-completion-script", shell)
        assert marker in script, shell
        if shell == "bash":  # one bash can parse
            check = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
            assert check.returncode == 0, check.stderr
        for word in ("certs", "renew", "revoke", "reseal", "admin", "token"):
            assert word in script, (shell, word)


def test_bad_arguments_say_what_is_expected(edgeproxy_bin, tmp_path):
    assert "Missing expected argument '--cert <file>'" in fails(edgeproxy_bin, "certs", "add", "x.test", code=64)
    assert "Unexpected argument 'bogus'" in fails(edgeproxy_bin, "bogus", code=64)
    assert "Missing expected argument '<name>'" in fails(edgeproxy_bin, "acme", "renew", code=64)
    # No configuration where the default points, and no --admin: the error says what to pass.
    err = fails(edgeproxy_bin, "status", "--config", tmp_path / "missing.yaml")
    assert "missing.yaml" in err and "--admin URL" in err, err
    assert "not an http://HOST:PORT URL" in fails(edgeproxy_bin, "status", "--admin", "ftp://x")


# ----- status, reload ---------------------------------------------------------------------------

def test_status(node, edgeproxy_bin):
    p, admin, port = node
    status = json.loads(ok(edgeproxy_bin, "status", "--config", p.config_path, "--json"))
    version = json.loads(ok(edgeproxy_bin, "version", "--json"))
    assert {k: status[k] for k in version} == version
    assert status["pid"] == p.pid and status["config"] == str(p.config_path)
    assert status["https"] == [f"127.0.0.1:{p.https_port}"] and status["http"] == []
    listed = admin.json("GET", "/certificates")[1]
    assert status["certificates"] == len(listed) == 6
    assert status["acme"] is None and status["cluster"] is None
    assert status["workers"] >= 1 and 0 <= status["uptime_seconds"] < 600
    table = fields(ok(edgeproxy_bin, "status", "-c", p.config_path))
    assert table["pid"] == str(p.pid) and table["certificates"] == "6" and table["config"] == str(p.config_path)
    assert table["version"] == f"edgeproxy {version['version']} (commit {version['commit']})"
    assert table["https"] == f"127.0.0.1:{p.https_port}" and table["http"] == "-"
    assert table["acme"] == "off" and table["cluster"] == "off"


def test_reload(node, edgeproxy_bin):
    p, admin, port = node
    out = ok(edgeproxy_bin, "reload", "-c", p.config_path)
    assert re.fullmatch(r"reloaded: 0 new or changed, 0 removed, 6 unchanged, 0 refused\n", out), out
    report = json.loads(ok(edgeproxy_bin, "reload", "-c", p.config_path, "--json"))
    assert report == {"applied": 0, "removed": 0, "unchanged": 6, "refused": []}
    # A certificate the node refuses: listed, exit 1; the others keep serving.
    broken = p.dir / "certs" / "broken.crt"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    (p.dir / "certs" / "broken.key").write_text("nothing\n")
    try:
        r = cli(edgeproxy_bin, "reload", "-c", p.config_path)
        assert r.returncode == 1 and "1 certificate(s) refused" in r.stderr, r.stderr
        assert "1 refused" in r.stdout and "REFUSED" in r.stdout and "broken.crt" in r.stdout, r.stdout
    finally:
        broken.unlink()
        (p.dir / "certs" / "broken.key").unlink()
    # A configuration with an error changes nothing, and the command says where the error is
    # (through --admin: the broken file cannot tell the command where the node is either).
    good = p.config_path.read_text()
    p.config_path.write_text(good + "workers: many\n")
    try:
        err = fails(edgeproxy_bin, "reload", "--admin", f"127.0.0.1:{port}", "--token", TOKEN)
        assert re.search(r'config\.yaml:\d+:\d+: .*"many" \(POST /reload: 422\)', err), err
        assert "config.yaml" in fails(edgeproxy_bin, "reload", "-c", p.config_path)
    finally:
        p.config_path.write_text(good)
    assert handshake_cert(p.https_port, "a.test")["serial"]
    ok(edgeproxy_bin, "reload", "-c", p.config_path)


def test_status_tells_what_runs_after_a_reload_that_needs_a_restart(node, edgeproxy_bin):
    """Workers and listeners change only on restart: after a reload that changes them, the node
    warns, and `status` reports the loops and listeners that run, not the file's new values."""
    p, admin, port = node
    before = json.loads(ok(edgeproxy_bin, "status", "-c", p.config_path, "--json"))
    good = p.config_path.read_text()
    config = yaml.safe_load(good)
    config["workers"] = before["workers"] + 1
    config["listen"]["https"] = [f"127.0.0.1:{free_port()}"]
    p.config_path.write_text(to_yaml(config) + "\n")
    warning = "listeners, workers, TLS protocol settings and logs change only on restart"
    warned = p.stderr().count(warning)
    try:
        ok(edgeproxy_bin, "reload", "-c", p.config_path)
        after = json.loads(ok(edgeproxy_bin, "status", "-c", p.config_path, "--json"))
        assert (after["workers"], after["https"]) == (before["workers"], before["https"]), after
        assert p.stderr().count(warning) == warned + 1
        assert handshake_cert(p.https_port, "a.test")["serial"]
    finally:
        p.config_path.write_text(good)
        ok(edgeproxy_bin, "reload", "-c", p.config_path)


# ----- certificates -----------------------------------------------------------------------------

def test_certs_list_and_show(node, edgeproxy_bin, pki):
    p, admin, port = node
    listed = admin.json("GET", "/certificates")[1]
    assert json.loads(ok(edgeproxy_bin, "certs", "list", "-c", p.config_path, "--json")) == listed
    table = rows(ok(edgeproxy_bin, "certs", "list", "-c", p.config_path))
    assert table[0] == ["NAME", "SERVES", "KEY", "NOT AFTER", "DAYS LEFT", "SOURCE"]
    by_name = {r[0]: r for r in table[1:]}
    assert set(by_name) == {c["name"] for c in listed}
    assert by_name["a.test-rsa"][1:3] == ["a.test", "rsa"] and by_name["wild"][1] == "*.wild.test"
    assert by_name["c.test"][5] == "file" and by_name["a.test"][5] == "directory"
    assert 28 <= int(by_name["a.test"][4]) <= 30

    shown = json.loads(ok(edgeproxy_bin, "certs", "show", "a.test", "-c", p.config_path, "--json"))
    assert shown == next(c for c in listed if c["name"] == "a.test")
    assert int(shown["serial"], 16) == pki.leaves["a_ec"].serial
    table = fields(ok(edgeproxy_bin, "certs", "show", "a.test", "-c", p.config_path))
    assert table["serial"] == shown["serial"] and table["key"] == "ecdsa" and table["serves"] == "a.test"
    assert table["path"].endswith("certs/a.test.crt") and "days left" in table["not after"]
    # A name it serves finds it too (the certificate is "wild").
    assert json.loads(ok(edgeproxy_bin, "certs", "show", "*.wild.test", "-c", p.config_path, "--json"))["name"] == "wild"
    err = fails(edgeproxy_bin, "certs", "show", "nothing.test", "-c", p.config_path)
    assert "no certificate named nothing.test" in err and "404" in err, err
    assert "is not a certificate name" in fails(edgeproxy_bin, "certs", "show", "../etc", "-c", p.config_path)


def test_certs_add_and_remove(node, edgeproxy_bin, pki, tmp_path):
    p, admin, port = node
    leaf = pki.issue(["cli-added.test"])
    cert, key = tmp_path / "added.crt", tmp_path / "added.key"
    cert.write_bytes(leaf.chain_pem)
    key.write_bytes(leaf.key_pem)
    out = ok(edgeproxy_bin, "certs", "add", "cli-added.test", "--cert", cert, "--key", key, "-c", p.config_path)
    assert out.startswith("added cli-added.test: serves cli-added.test, ecdsa,"), out
    assert handshake_cert(p.https_port, "cli-added.test")["serial"] == leaf.serial
    listed = {c["name"]: c for c in json.loads(ok(edgeproxy_bin, "certs", "list", "-c", p.config_path, "--json"))}
    assert int(listed["cli-added.test"]["serial"], 16) == leaf.serial and listed["cli-added.test"]["source"] == "api"

    # Replaced, in JSON: the node's answer as it is.
    second = pki.issue(["cli-added.test"])
    cert.write_bytes(second.chain_pem)
    key.write_bytes(second.key_pem)
    answer = json.loads(ok(edgeproxy_bin, "certs", "add", "cli-added.test", "--cert", cert, "--key", key, "-c", p.config_path, "--json"))
    assert int(answer["serial"], 16) == second.serial
    assert handshake_cert(p.https_port, "cli-added.test")["serial"] == second.serial

    # A key that does not match: the node refuses it and the one serving stays.
    key.write_bytes(pki.issue(["other.test"]).key_pem)
    err = fails(edgeproxy_bin, "certs", "add", "cli-added.test", "--cert", cert, "--key", key, "-c", p.config_path)
    assert "422" in err and "keeps serving" in err, err
    assert handshake_cert(p.https_port, "cli-added.test")["serial"] == second.serial
    # Files that cannot be used never reach the node.
    assert "cannot read the file" in fails(edgeproxy_bin, "certs", "add", "x.test", "--cert", tmp_path / "none.crt", "--key", key,
                                           "-c", p.config_path)
    (tmp_path / "text.crt").write_text("hello\n")
    assert "not a PEM file" in fails(edgeproxy_bin, "certs", "add", "x.test", "--cert", tmp_path / "text.crt", "--key", key,
                                     "-c", p.config_path)

    assert ok(edgeproxy_bin, "certs", "remove", "cli-added.test", "-c", p.config_path) == "removed cli-added.test\n"
    assert handshake_cert(p.https_port, "cli-added.test")["serial"] != second.serial  # the default now
    assert "cli-added.test" not in ok(edgeproxy_bin, "certs", "list", "-c", p.config_path)
    err = fails(edgeproxy_bin, "certs", "remove", "cli-added.test", "-c", p.config_path)
    assert "no certificate named cli-added.test" in err, err
    # JSON for removal too.
    cert.write_bytes(leaf.chain_pem)
    key.write_bytes(leaf.key_pem)
    ok(edgeproxy_bin, "certs", "add", "cli-added.test", "--cert", cert, "--key", key, "-c", p.config_path)
    assert json.loads(ok(edgeproxy_bin, "certs", "remove", "cli-added.test", "-c", p.config_path, "--json")) == {"deleted": "cli-added.test"}


# ----- finding the admin API, and its errors ---------------------------------------------------

def test_admin_url_and_token_from_options_or_environment(node, edgeproxy_bin):
    p, admin, port = node
    url = f"http://127.0.0.1:{port}"
    by_url = json.loads(ok(edgeproxy_bin, "status", "--admin", url, "--token", TOKEN, "--json"))
    assert by_url["pid"] == p.pid
    assert json.loads(ok(edgeproxy_bin, "status", "--admin", f"127.0.0.1:{port}/", "--json",
                         env={"EDGEPROXY_ADMIN_TOKEN": TOKEN}))["pid"] == p.pid
    # --admin with --config: the address from the option, the token from the file.
    assert json.loads(ok(edgeproxy_bin, "status", "--admin", url, "-c", p.config_path, "--json"))["pid"] == p.pid


def test_wrong_or_missing_token(node, edgeproxy_bin):
    p, admin, port = node
    url = f"http://127.0.0.1:{port}"
    err = fails(edgeproxy_bin, "status", "--admin", url)
    assert "missing bearer token" in err and "--token" in err, err
    for command in (["status"], ["certs", "list"], ["reload"], ["certs", "remove", "a.test"]):
        err = fails(edgeproxy_bin, *command, "--admin", url, "--token", "not-the-token-at-all")
        assert f"the admin API at {url} refused the request: wrong bearer token" in err, (command, err)
    # --token wins over the file's.
    err = fails(edgeproxy_bin, "certs", "list", "-c", p.config_path, "--token", "not-the-token-at-all", "--json")
    assert "wrong bearer token" in err
    assert handshake_cert(p.https_port, "a.test")["serial"]  # nothing was removed


def test_unreachable_and_off(edgeproxy_bin, tmp_path):
    dead = free_port()
    err = fails(edgeproxy_bin, "status", "--admin", f"127.0.0.1:{dead}")
    assert f"cannot reach the admin API at http://127.0.0.1:{dead} (from --admin)" in err and "refused" in err, err
    # From a configuration whose node is not running: the error names where the address came from.
    config = tmp_path / "config.yaml"
    config.write_text(to_yaml({"admin": {"listen": f"127.0.0.1:{dead}"}}) + "\n")
    for command in (["status"], ["certs", "list"], ["acme", "status"], ["cluster", "status"], ["reload"],
                    ["certs", "show", "a.test"], ["acme", "renew", "a.test"], ["acme", "revoke", "a.test"]):
        err = fails(edgeproxy_bin, *command, "--config", config, "--json")
        assert f"cannot reach the admin API at http://127.0.0.1:{dead} (from admin.listen in {config})" in err, (command, err)
    # No admin section: the API is off, and the error says how to turn it on.
    config.write_text(to_yaml({"log": {"level": "info"}}) + "\n")
    err = fails(edgeproxy_bin, "status", "--config", config)
    assert f"the admin API is off in {config}" in err and "admin:" in err and "--admin URL" in err, err


def test_acme_and_cluster_off(node, edgeproxy_bin):
    p, admin, port = node
    assert "ACME is off" in fails(edgeproxy_bin, "acme", "status", "-c", p.config_path)
    assert "ACME is off" in fails(edgeproxy_bin, "acme", "renew", "a.test", "-c", p.config_path)
    assert "no cluster is configured" in fails(edgeproxy_bin, "cluster", "status", "-c", p.config_path)
    assert "no cluster section" in fails(edgeproxy_bin, "cluster", "reseal", "-c", p.config_path)


# ----- ACME, against Pebble ---------------------------------------------------------------------

def test_acme_status_renew_and_revoke(proxies, tmp_path, edgeproxy_bin):
    from pebble import Pebble, available
    assert available(), "pebble / pebble-challtestsrv are missing: apt-get install pebble (make test installs it)"
    ports = {"https": free_port(), "http": free_port(), "admin": free_port()}
    pebble = Pebble(tmp_path / "pebble", ports["http"], ports["https"])
    try:
        acme = pebble.acme_section(["cli.acme.test"], challenges=["http-01"])
        p = proxies({"listen": {"https": [f"127.0.0.1:{ports['https']}"], "http": [f"127.0.0.1:{ports['http']}"]},
                     "admin": {"listen": f"127.0.0.1:{ports['admin']}"}, "acme": acme,
                     "routes": [{"respond": {"status": 200, "body": "hello\n", "content_type": "text/plain"}}],
                     "log": {"access": "off"}}, standard_certs=False)
        wait_for_port(ports["admin"])
        c = ["-c", p.config_path]

        def issued(count: int, after: dict | None = None) -> dict:
            """The status once issued `count` times and its serial recorded (not `after`'s)."""
            def done():
                s = json.loads(ok(edgeproxy_bin, "acme", "status", *c, "--json"))["certificates"][0]
                return s if s["issued"] >= count and s["serial"] and s["serial"] != (after or {}).get("serial") else None
            return wait_until(done, 60, interval=0.2, what=f"cli.acme.test issued {count} time(s)")

        first = issued(1)
        table = rows(ok(edgeproxy_bin, "acme", "status", *c))
        assert table[0] == ["NAME", "SERIAL", "NOT AFTER", "RENEW AT", "NEXT ATTEMPT", "ISSUED", "FAILURES", "LAST ERROR"]
        assert table[1][:2] == ["cli.acme.test", first["serial"]] and table[1][5:] == ["1", "0", "-"], table
        status = json.loads(ok(edgeproxy_bin, "status", *c, "--json"))
        assert status["acme"] == {"managed": 1, "failing": 0}
        assert fields(ok(edgeproxy_bin, "status", *c))["acme"] == "1 managed, 0 failing"

        # Renewed now, although it is far from due.
        out = ok(edgeproxy_bin, "acme", "renew", "cli.acme.test", *c)
        assert out == f"renewing cli.acme.test (serial {first['serial']} until now); `edgeproxy acme status` shows the new one\n", out
        second = issued(2, first)
        wait_until(lambda: handshake_cert(p.https_port, "cli.acme.test")["serial"] == int(second["serial"], 16), 10,
                   what="the renewed certificate served")
        assert json.loads(ok(edgeproxy_bin, "acme", "renew", "cli.acme.test", *c, "--json")) == \
            {"renewing": "cli.acme.test", "serial": second["serial"]}
        third = issued(3, second)
        assert "not managed" in fails(edgeproxy_bin, "acme", "renew", "other.acme.test", *c)

        out = ok(edgeproxy_bin, "acme", "revoke", "cli.acme.test", "--reason", "superseded", *c)
        assert out == f"revoked cli.acme.test, serial {third['serial']} (superseded); a replacement is being obtained\n", out
        issued(4, third)
        err = fails(edgeproxy_bin, "acme", "revoke", "cli.acme.test", "--reason", "cACompromise", *c)
        assert "unknown revocation reason" in err and "400" in err, err
    finally:
        pebble.stop()


# ----- the cluster, against etcd ----------------------------------------------------------------

def test_cluster_status(proxies, tmp_path, edgeproxy_bin):
    from etcd import EtcdCluster, new_sealing_key, node_config
    etcd = EtcdCluster(tmp_path / "etcd", members=1)
    try:
        admin_port = free_port()
        p = proxies(node_config(etcd, "/cli-test/", "cli-node", [new_sealing_key(tmp_path)], admin_port),
                    standard_certs=False)
        wait_for_port(admin_port)
        c = ["-c", p.config_path]
        wait_until(lambda: json.loads(ok(edgeproxy_bin, "cluster", "status", *c, "--json"))["nodes"], 15,
                   what="the node registered in etcd")
        status = json.loads(ok(edgeproxy_bin, "cluster", "status", *c, "--json"))
        assert status["node"] == "cli-node" and status["etcd_connected"] is True and status["prefix"] == "/cli-test/"
        assert [n["node"] for n in status["nodes"]] == ["cli-node"]
        text = ok(edgeproxy_bin, "cluster", "status", *c)
        head, _, nodes = text.partition("\n\n")
        table = fields(head)
        assert table["node"] == "cli-node" and table["etcd"] == "connected" and table["prefix"] == "/cli-test/"
        assert table["endpoints"].endswith("(healthy)"), table
        nodes = rows(nodes)
        assert nodes[0] == ["NODE", "STARTED", "REVISION", "CERTIFICATES", "UPDATED"] and nodes[1][0] == "cli-node"
        assert json.loads(ok(edgeproxy_bin, "status", *c, "--json"))["cluster"]["node"] == "cli-node"
        assert fields(ok(edgeproxy_bin, "status", *c))["cluster"].startswith("node cli-node, etcd connected")
        # The maintenance commands keep their arguments.
        assert "re-sealed" in ok(edgeproxy_bin, "cluster", "reseal", *c)
        assert "imported 0 certificate(s)" in ok(edgeproxy_bin, "cluster", "import", *c)
    finally:
        etcd.stop()
