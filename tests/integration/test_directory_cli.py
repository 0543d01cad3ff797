"""The administration commands: tern domain, tern user (with app
passwords) and tern alias against the SQLite directory of a quickstart
instance (not started: the commands work on the database directly).
Checks normalization, exit codes, JSON output, that passwords never come
from argv, and what is stored (Argon2id hash and SCRAM keys)."""

import base64
import hashlib
import hmac
import json
import os
import re
import select
import sqlite3
import subprocess
import termios
import time
import uuid

import pytest

from conftest import TERN_BIN, run_tern

EX_USAGE = 64
EX_DATAERR = 65

APP_PASSWORD_RE = re.compile(r"^[a-z0-9]{4}(-[a-z0-9]{4}){3}$")


@pytest.fixture(scope="module")
def inst(tern_module_instance):
    return tern_module_instance(start=False)


def tern(inst, *args, input=None):
    """Run a command against inst; stdin is empty unless input is given
    (never the test runner's terminal)."""
    kw = {} if input is not None else {"stdin": subprocess.DEVNULL}
    return run_tern(*args, conf=inst.conf, input=input, **kw)


def ok(inst, *args, input=None):
    r = tern(inst, *args, input=input)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return r


def fails(inst, code, *args, input=None):
    r = tern(inst, *args, input=input)
    assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip(), f"{args}: no message on stderr"
    assert len(r.stderr.strip().splitlines()) <= 2, r.stderr
    return r


def fresh_domain():
    return f"d{uuid.uuid4().hex[:10]}.example"


@pytest.fixture
def domain(inst):
    d = fresh_domain()
    ok(inst, "domain", "add", d)
    return d


def db(inst):
    return sqlite3.connect(str(inst.data / "directory.db"))


def user_row(inst, address):
    with db(inst) as c:
        return c.execute("SELECT password_hash, scram FROM users "
                         "WHERE address = ?", (address,)).fetchone()


def users_json(inst, *args):
    r = ok(inst, "user", "list", *args, "--json")
    data = json.loads(r.stdout)
    assert isinstance(data, list)
    return {u["address"]: u for u in data}


def scram_matches(scram, password):
    """SCRAM-SHA-256$ITER$SALT$STOREDKEY$SERVERKEY made from password?"""
    name, it, salt, stored, server = scram.split("$")
    assert name == "SCRAM-SHA-256"
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                 base64.b64decode(salt), int(it))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return (hashlib.sha256(client_key).digest() == base64.b64decode(stored)
            and server_key == base64.b64decode(server))


# ---------------------------------------------------------------- help


def test_help_lists_admin_commands():
    out = run_tern("help").stdout
    for cmd in ("domain", "user", "alias"):
        assert re.search(rf"^\s+{cmd}\s", out, re.M), f"{cmd} missing"
    for cmd in ("domain", "user", "alias"):
        r = run_tern(cmd, "--help")
        assert r.returncode == 0 and r.stdout.strip(), r.stderr


@pytest.mark.parametrize("args", [
    ["domain"], ["domain", "frob"], ["domain", "add"],
    ["domain", "add", "a.example", "b.example"], ["domain", "list", "x"],
    ["user"], ["user", "add"], ["user", "app-password"],
    ["user", "app-password", "add", "a@b.example"],
    ["user", "list", "--force"], ["alias", "add", "a@b.example"],
    ["alias", "list", "--frob"],
])
def test_usage_errors(inst, args):
    fails(inst, EX_USAGE, *args)


# ---------------------------------------------------------------- domains


def test_domain_add_list_del(inst):
    d = fresh_domain()
    ok(inst, "domain", "add", d.upper())
    assert d in ok(inst, "domain", "list").stdout.splitlines()
    listed = json.loads(ok(inst, "domain", "list", "--json").stdout)
    assert {"domain": d} in listed
    r = fails(inst, EX_DATAERR, "domain", "add", d)
    assert "exists" in r.stderr
    ok(inst, "domain", "del", d)
    assert d not in ok(inst, "domain", "list").stdout.splitlines()
    r = fails(inst, EX_DATAERR, "domain", "del", d)
    assert d in r.stderr


def test_domain_idn_stored_as_a_label(inst):
    alabel = "bücher-tern.example".encode("idna").decode()
    assert alabel.startswith("xn--")
    ok(inst, "domain", "add", "Bücher-Tern.example")
    assert alabel in ok(inst, "domain", "list").stdout.splitlines()
    fails(inst, EX_DATAERR, "domain", "add", alabel)
    ok(inst, "domain", "del", "bücher-tern.example")
    assert alabel not in ok(inst, "domain", "list").stdout


@pytest.mark.parametrize("bad", ["-bad.example", "a..example", "a b.example",
                                 "x" * 64 + ".example", ""])
def test_domain_invalid(inst, bad):
    fails(inst, EX_DATAERR, "domain", "add", "--", bad)


def test_domain_del_with_users_needs_force(inst, domain):
    ok(inst, "user", "add", f"u@{domain}")
    ok(inst, "alias", "add", f"a@{domain}", f"u@{domain}")
    r = fails(inst, EX_DATAERR, "domain", "del", domain)
    assert "--force" in r.stderr
    ok(inst, "domain", "del", domain, "--force")
    assert domain not in ok(inst, "domain", "list").stdout
    assert f"u@{domain}" not in ok(inst, "user", "list").stdout
    assert f"a@{domain}" not in ok(inst, "alias", "list").stdout


# ---------------------------------------------------------------- users


def test_user_add_normalizes_and_stores_hashes(inst, domain):
    ok(inst, "user", "add", f"Alice@{domain.upper()}", "--password-stdin",
       input="correct horse\r\n")
    addr = f"alice@{domain}"
    assert addr in ok(inst, "user", "list").stdout
    u = users_json(inst)[addr]
    assert set(u) >= {"address", "quota_bytes", "suspended", "created",
                      "scheme"}
    assert u["quota_bytes"] == 0 and u["suspended"] is False
    assert u["scheme"] == "ARGON2ID"
    assert isinstance(u["created"], int) and u["created"] > 1600000000
    pw_hash, scram = user_row(inst, addr)
    assert pw_hash.startswith("{ARGON2ID}$argon2id$"), pw_hash
    assert scram and scram_matches(scram, "correct horse"), scram


def test_user_list_by_domain(inst, domain):
    other = fresh_domain()
    ok(inst, "domain", "add", other)
    ok(inst, "user", "add", f"a@{domain}")
    ok(inst, "user", "add", f"b@{other}")
    assert set(users_json(inst, domain)) == {f"a@{domain}"}
    assert set(users_json(inst, other.upper())) == {f"b@{other}"}
    fails(inst, EX_DATAERR, "user", "list", fresh_domain())


def test_user_add_without_password_cannot_log_in(inst, domain):
    r = ok(inst, "user", "add", f"nopw@{domain}")
    assert "cannot log in" in r.stderr
    assert users_json(inst)[f"nopw@{domain}"]["scheme"] is None
    assert user_row(inst, f"nopw@{domain}")[0] is None
    ok(inst, "user", "passwd", f"nopw@{domain}", "--password-stdin",
       input="now one\n")
    assert users_json(inst)[f"nopw@{domain}"]["scheme"] == "ARGON2ID"


def test_user_passwd_changes_hash(inst, domain):
    addr = f"bob@{domain}"
    ok(inst, "user", "add", addr, "--password-stdin", input="first\n")
    before = user_row(inst, addr)
    ok(inst, "user", "passwd", addr.upper(), "--password-stdin",
       input="second\n")
    after = user_row(inst, addr)
    assert after[0] != before[0] and after[0].startswith("{ARGON2ID}")
    assert scram_matches(after[1], "second")
    # No password on stdin and no terminal: nothing to set.
    fails(inst, EX_USAGE, "user", "passwd", addr)
    fails(inst, EX_DATAERR, "user", "passwd", addr, "--password-stdin",
          input="")
    assert user_row(inst, addr) == after


def test_user_non_ascii_password_has_no_scram(inst, domain):
    addr = f"utf@{domain}"
    r = ok(inst, "user", "add", addr, "--password-stdin",
           input="pässwörd\n")
    assert "SCRAM" in r.stderr
    pw_hash, scram = user_row(inst, addr)
    assert pw_hash.startswith("{ARGON2ID}") and scram is None


def test_user_password_bounds(inst, domain):
    addr = f"bounds@{domain}"
    ok(inst, "user", "add", addr)
    fails(inst, EX_DATAERR, "user", "passwd", addr, "--password-stdin",
          input="a\0b\n")
    fails(inst, EX_DATAERR, "user", "passwd", addr, "--password-stdin",
          input="x" * 1025 + "\n")
    ok(inst, "user", "passwd", addr, "--password-stdin",
       input="y" * 1024 + "\n")
    assert scram_matches(user_row(inst, addr)[1], "y" * 1024)


def test_password_never_from_argv(inst, domain):
    for opt in (["--password", "secret"], ["--password=secret"], ["-p"]):
        r = fails(inst, EX_USAGE, "user", "add", f"argv@{domain}", *opt)
        assert "secret" not in r.stderr
    assert f"argv@{domain}" not in users_json(inst)


def test_user_suspend_resume(inst, domain):
    addr = f"sus@{domain}"
    ok(inst, "user", "add", addr)
    ok(inst, "user", "suspend", addr)
    assert users_json(inst)[addr]["suspended"] is True
    line = [l for l in ok(inst, "user", "list").stdout.splitlines()
            if l.startswith(addr + " ")]
    assert line and "suspended" in line[0]
    ok(inst, "user", "resume", addr)
    assert users_json(inst)[addr]["suspended"] is False
    fails(inst, EX_DATAERR, "user", "suspend", f"nobody@{domain}")


def test_user_quota(inst, domain):
    addr = f"q@{domain}"
    ok(inst, "user", "add", addr, "--quota", "512M")
    assert users_json(inst)[addr]["quota_bytes"] == 512 << 20
    ok(inst, "user", "quota", addr, "1G")
    assert users_json(inst)[addr]["quota_bytes"] == 1 << 30
    assert "1G" in ok(inst, "user", "list", domain).stdout
    ok(inst, "user", "quota", addr, "none")
    assert users_json(inst)[addr]["quota_bytes"] == 0
    fails(inst, EX_USAGE, "user", "quota", addr, "12X")
    fails(inst, EX_USAGE, "user", "add", f"q2@{domain}", "--quota", "-1")


def test_user_del(inst, domain):
    addr = f"gone@{domain}"
    ok(inst, "user", "add", addr)
    ok(inst, "user", "app-password", "add", addr, "old")
    ok(inst, "user", "del", addr)
    assert addr not in users_json(inst)
    r = fails(inst, EX_DATAERR, "user", "del", addr)
    assert addr in r.stderr
    # Its app passwords went with it.
    ok(inst, "user", "add", addr)
    assert app_list(inst, addr) == []


def test_user_add_duplicate(inst, domain):
    ok(inst, "user", "add", f"dup@{domain}")
    r = fails(inst, EX_DATAERR, "user", "add", f"DUP@{domain}")
    assert "exists" in r.stderr


@pytest.mark.parametrize("bad", ["no-at-sign", "a@", "@b.example",
                                 "a b@c.example", "x" * 65 + "@c.example",
                                 "a@b@c.example"])
def test_user_invalid_address(inst, bad):
    r = fails(inst, EX_DATAERR, "user", "add", "--", bad)
    assert "address" in r.stderr


def test_user_unknown_domain(inst):
    d = fresh_domain()
    r = fails(inst, EX_DATAERR, "user", "add", f"x@{d}", "--password-stdin",
              input="pw\n")
    assert f"no domain {d}" in r.stderr and "domain add" in r.stderr


def test_user_idn_domain(inst):
    alabel = "münchen-tern.example".encode("idna").decode()
    ok(inst, "domain", "add", "münchen-tern.example")
    ok(inst, "user", "add", "Max@MÜNCHEN-tern.example")
    assert f"max@{alabel}" in users_json(inst, alabel)


# ---------------------------------------------------------------- aliases


def aliases_json(inst):
    data = json.loads(ok(inst, "alias", "list", "--json").stdout)
    return {a["source"]: a for a in data}


def test_alias_add_list_del(inst, domain):
    ok(inst, "user", "add", f"u1@{domain}")
    ok(inst, "user", "add", f"u2@{domain}")
    ok(inst, "alias", "add", f"Team@{domain}",
       f"U1@{domain}, u2@{domain.upper()},ext@other.example")
    a = aliases_json(inst)[f"team@{domain}"]
    assert set(a["destinations"]) == {f"u1@{domain}", f"u2@{domain}",
                                      "ext@other.example"}
    assert a["catch_all"] is False
    text = ok(inst, "alias", "list").stdout
    assert re.search(rf"^team@{re.escape(domain)}\s+\S*u1@", text, re.M)
    # Adding again replaces.
    ok(inst, "alias", "add", f"team@{domain}", f"u1@{domain}")
    assert aliases_json(inst)[f"team@{domain}"]["destinations"] == [
        f"u1@{domain}"]
    ok(inst, "alias", "del", f"team@{domain}")
    assert f"team@{domain}" not in aliases_json(inst)
    fails(inst, EX_DATAERR, "alias", "del", f"team@{domain}")


def test_alias_catch_all(inst, domain):
    ok(inst, "user", "add", f"all@{domain}")
    ok(inst, "alias", "add", f"@{domain.upper()}", f"all@{domain}")
    a = aliases_json(inst)[f"@{domain}"]
    assert a["catch_all"] is True and a["destinations"] == [f"all@{domain}"]
    ok(inst, "alias", "del", f"@{domain}")
    assert f"@{domain}" not in aliases_json(inst)


def test_alias_bad_input(inst, domain):
    ok(inst, "user", "add", f"real@{domain}")
    fails(inst, EX_DATAERR, "alias", "add", f"x@{fresh_domain()}",
          f"real@{domain}")
    fails(inst, EX_DATAERR, "alias", "add", f"x@{domain}", "not an address")
    fails(inst, EX_DATAERR, "alias", "add", f"x@{domain}",
          f"real@{domain},,y@z.example")
    fails(inst, EX_DATAERR, "alias", "add", f"x@{domain}", f"x@{domain}")
    fails(inst, EX_DATAERR, "alias", "add", f"real@{domain}",
          "y@z.example")
    fails(inst, EX_DATAERR, "alias", "add", "@bad..example", "y@z.example")


def test_alias_loop_refused(inst, domain):
    ok(inst, "alias", "add", f"a@{domain}", f"b@{domain}")
    fails(inst, EX_DATAERR, "alias", "add", f"b@{domain}", f"a@{domain}")
    assert f"b@{domain}" not in aliases_json(inst)
    assert aliases_json(inst)[f"a@{domain}"]["destinations"] == [
        f"b@{domain}"]


# ---------------------------------------------------------------- app passwords


def app_list(inst, addr):
    return json.loads(ok(inst, "user", "app-password", "list", addr,
                         "--json").stdout)


def test_app_password_generated(inst, domain):
    addr = f"app@{domain}"
    ok(inst, "user", "add", addr, "--password-stdin", input="main\n")
    r = ok(inst, "user", "app-password", "add", addr, "phone",
           "--services", "imap,smtp")
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and APP_PASSWORD_RE.match(lines[0]), r.stdout
    assert lines[0] not in r.stderr
    r2 = ok(inst, "user", "app-password", "add", addr, "laptop")
    assert r2.stdout.strip() != lines[0]
    listed = {p["label"]: p for p in app_list(inst, addr)}
    assert set(listed) == {"phone", "laptop"}
    assert listed["phone"]["services"] == ["imap", "smtp"]
    assert listed["laptop"]["services"] == ["imap", "pop3", "smtp", "sieve"]
    text = ok(inst, "user", "app-password", "list", addr).stdout
    assert re.search(r"^phone\s+imap,smtp\s", text, re.M), text
    assert lines[0] not in text
    fails(inst, EX_DATAERR, "user", "app-password", "add", addr, "phone")
    ok(inst, "user", "app-password", "del", addr, "phone")
    assert [p["label"] for p in app_list(inst, addr)] == ["laptop"]
    fails(inst, EX_DATAERR, "user", "app-password", "del", addr, "phone")


def test_app_password_from_stdin(inst, domain):
    addr = f"app2@{domain}"
    ok(inst, "user", "add", addr)
    r = ok(inst, "user", "app-password", "add", addr, "mine",
           "--password-stdin", input="my own app password\n")
    assert r.stdout == ""
    assert [p["label"] for p in app_list(inst, addr)] == ["mine"]


def test_app_password_bad_input(inst, domain):
    addr = f"app3@{domain}"
    ok(inst, "user", "add", addr)
    fails(inst, EX_USAGE, "user", "app-password", "add", addr, "x",
          "--services", "imap,ftp")
    fails(inst, EX_DATAERR, "user", "app-password", "add", addr, "bad\tlabel")
    fails(inst, EX_DATAERR, "user", "app-password", "add", addr, "")
    fails(inst, EX_DATAERR, "user", "app-password", "add",
          f"nobody@{domain}", "x")
    fails(inst, EX_DATAERR, "user", "app-password", "list", f"nobody@{domain}")


def test_app_password_label_with_sql_metacharacters(inst, domain):
    addr = f"sql@{domain}"
    label = "x'); DROP TABLE users; -- \"quoted\" \\ 100%_*"
    ok(inst, "user", "add", addr)
    ok(inst, "user", "app-password", "add", addr, label)
    assert [p["label"] for p in app_list(inst, addr)] == [label]
    assert addr in users_json(inst)
    ok(inst, "user", "app-password", "del", addr, label)
    assert app_list(inst, addr) == []


# ---------------------------------------------------------------- terminal


def run_on_tty(inst, args, answers, timeout=30):
    """Run tern with a pseudo-terminal as stdin and stderr, typing each
    answer after its prompt. Returns (returncode, what the terminal
    showed, the terminal's echo flag afterwards)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([TERN_BIN, "-c", str(inst.conf), *args],
                            stdin=slave, stdout=subprocess.PIPE,
                            stderr=slave)
    shown = b""
    deadline = time.monotonic() + timeout

    def read_until(pattern):
        nonlocal shown
        while not re.search(pattern, shown):
            assert time.monotonic() < deadline, shown
            if select.select([master], [], [], 0.2)[0]:
                shown += os.read(master, 4096)

    try:
        for prompt, answer in answers:
            read_until(prompt)
            os.write(master, answer.encode() + b"\n")
        rc = proc.wait(timeout=timeout)
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        echo = bool(termios.tcgetattr(slave)[3] & termios.ECHO)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        os.close(master)
        os.close(slave)
    return rc, shown.decode(errors="replace"), echo


def test_password_prompt_twice_without_echo(inst, domain):
    addr = f"tty@{domain}"
    rc, shown, echo = run_on_tty(
        inst, ["user", "add", addr],
        [(rb"[Pp]assword.*: ", "typed secret"), (rb"Again: ", "typed secret")])
    assert rc == 0, shown
    assert "typed secret" not in shown
    assert echo, "the terminal's echo was not restored"
    assert scram_matches(user_row(inst, addr)[1], "typed secret")


def test_password_prompt_mismatch(inst, domain):
    addr = f"tty2@{domain}"
    ok(inst, "user", "add", addr)
    rc, shown, echo = run_on_tty(
        inst, ["user", "passwd", addr],
        [(rb"[Pp]assword.*: ", "one"), (rb"Again: ", "two")])
    assert rc == EX_DATAERR and "differ" in shown, shown
    assert echo
    assert user_row(inst, addr)[0] is None
