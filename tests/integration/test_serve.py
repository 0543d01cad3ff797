"""`tern serve` against real clients: listeners, processes, TLS (implicit
and STARTTLS), certificate reload, shutdown, supervision, start-up errors,
input bounds, STARTTLS pipelining, per-IP limits and the PROXY protocol."""

import os
import re
import signal
import smtplib
import imaplib
import poplib
import socket
import struct
import subprocess
import time

import pytest

from conftest import (HOSTNAME, IMPLICIT_TLS, PORTS, ROLES, Conn,
                      cert_file_fingerprint, cert_subject_cn,
                      client_tls_context, fingerprint, make_selfsigned,
                      peer_cert_der, pid_alive, run_tern, tls_open,
                      wait_until)

EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
EX_CONFIG = 78


@pytest.fixture(scope="module")
def tern(tern_module_instance):
    """One running instance for the tests that leave it as they found it."""
    return tern_module_instance()


# ---------------------------------------------------------------- basics


GREETINGS = {
    "smtp": rf"^220 {re.escape(HOSTNAME)} ESMTP",
    "submission": rf"^220 {re.escape(HOSTNAME)} ESMTP",
    "lmtp": rf"^220 {re.escape(HOSTNAME)} ",
    "imap": r"^\* OK \[CAPABILITY [^\]]*IMAP4rev1[^\]]*STARTTLS",
    "pop3": r"^\+OK",
    "managesieve": r"^\"IMPLEMENTATION\"",
}


@pytest.mark.parametrize("service", sorted(GREETINGS))
def test_plain_port_greets(tern, service):
    with Conn.open(tern.port(service)) as c:
        assert re.match(GREETINGS[service], c.readline()), service


def test_http_port_answers_404(tern):
    with Conn.open(tern.port("http")) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert re.match(r"HTTP/1\.[01] 404 ", c.readline())


def test_every_contract_port_listens(tern):
    for service, base in PORTS.items():
        port = tern.offset + base
        socket.create_connection(("127.0.0.1", port), timeout=3).close()


def test_five_named_processes(tern):
    procs = tern.processes()
    assert sorted(procs) == sorted(("parent",) + ROLES), procs
    for role, pid in procs.items():
        comm = open(f"/proc/{pid}/comm").read().strip()
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0]
        assert comm == f"tern: {role}", (pid, comm)
        assert cmdline.decode() == f"tern: {role}", (pid, cmdline)


def test_lmtp_and_http_only_on_loopback(tern):
    text = tern.conf.read_text()
    for service in ("lmtp", "http"):
        block = re.search(rf"^listener {service} \{{(.*?)^\}}", text,
                          re.M | re.S).group(1)
        assert re.search(r"^\s*address 127\.0\.0\.1\s*$", block, re.M)


# ---------------------------------------------------------------- TLS

FIRST_WORDS = {"submissions": r"^220 ", "imaps": r"^\* OK ",
               "pop3s": r"^\+OK"}


@pytest.mark.parametrize("service", IMPLICIT_TLS)
def test_implicit_tls_python(tern, service):
    with tls_open(tern.port(service)) as c:
        der = peer_cert_der(c)
        assert cert_subject_cn(der) == HOSTNAME
        assert fingerprint(der) == cert_file_fingerprint(tern.cert_path)
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert re.match(FIRST_WORDS[service], c.readline())


@pytest.mark.parametrize("service", IMPLICIT_TLS)
def test_implicit_tls_openssl_s_client(tern, service):
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{tern.port(service)}",
         "-servername", HOSTNAME, "-brief"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        errors="replace", timeout=20)
    assert r.returncode == 0, r.stderr
    assert "CONNECTION ESTABLISHED" in r.stderr, r.stderr
    assert re.search(rf"Peer certificate: .*CN\s*=\s*{re.escape(HOSTNAME)}",
                     r.stderr), r.stderr


@pytest.mark.parametrize("service", ["smtp", "submission"])
def test_smtp_starttls_smtplib(tern, service):
    with smtplib.SMTP("127.0.0.1", tern.port(service), timeout=5) as s:
        code, _ = s.ehlo("client.example.test")
        assert code == 250
        assert s.has_extn("starttls")
        code, msg = s.starttls(context=client_tls_context())
        assert code == 220, msg
        assert cert_subject_cn(s.sock.getpeercert(binary_form=True)) \
            == HOSTNAME
        code, _ = s.ehlo("client.example.test")
        assert code == 250
        assert not s.has_extn("starttls"), "STARTTLS offered inside TLS"
        assert s.noop()[0] == 250


def test_imap_starttls_imaplib(tern):
    m = imaplib.IMAP4("127.0.0.1", tern.port("imap"), timeout=5)
    try:
        assert "STARTTLS" in m.capabilities
        typ, _ = m.starttls(ssl_context=client_tls_context())
        assert typ == "OK"
        assert "STARTTLS" not in m.capabilities
        assert m.noop()[0] == "OK"
        assert m.logout()[0] == "BYE"
    finally:
        m.shutdown() if m.state != "LOGOUT" else None


def test_pop3_stls_poplib(tern):
    p = poplib.POP3("127.0.0.1", tern.port("pop3"), timeout=5)
    try:
        assert "STLS" in p.capa()
        assert p.stls(context=client_tls_context()).startswith(b"+OK")
        assert "STLS" not in p.capa()
        assert p.noop().startswith(b"+OK")
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()


def test_managesieve_starttls(tern):
    with Conn.open(tern.port("managesieve")) as c:
        lines = [c.readline()]
        while not lines[-1].startswith("OK"):
            lines.append(c.readline())
        assert '"STARTTLS"' in lines
        c.send("STARTTLS\r\n")
        assert c.readline().startswith("OK")
        c.starttls()
        assert cert_subject_cn(peer_cert_der(c)) == HOSTNAME
        # RFC 5804 2.2: the server re-issues its capabilities, then OK.
        lines = [c.readline(timeout=3)]
        while not re.match(r"(OK|NO|BYE)\b", lines[-1]):
            lines.append(c.readline(timeout=3))
        assert lines[0].startswith('"IMPLEMENTATION"'), lines
        assert lines[-1].startswith("OK"), lines
        assert '"STARTTLS"' not in lines, lines
        c.send("NOOP\r\n")
        assert c.readline().startswith("OK")


@pytest.mark.parametrize("service", ["smtp", "submission"])
def test_swaks_starttls(tern, service):
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(tern.port(service)),
         "--tls", "--quit-after", "EHLO", "--helo", "client.example.test",
         "--timeout", "10"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        errors="replace", timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TLS started" in r.stdout, r.stdout


def test_swaks_tls_on_connect(tern):
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port",
         str(tern.port("submissions")), "--tls-on-connect", "--quit-after",
         "EHLO", "--helo", "client.example.test", "--timeout", "10"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        errors="replace", timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TLS started" in r.stdout, r.stdout


# ---------------------------------------------------------------- bounds


def smtp_open(port):
    c = Conn.open(port)
    assert c.readline().startswith("220 ")
    return c


def test_line_too_long_then_session_goes_on(tern):
    with smtp_open(tern.port("smtp")) as c:
        c.send(b"NOOP " + b"x" * 3000 + b"\r\n")
        assert c.readline().startswith("500 5.5.2"), "no 500 5.5.2"
        c.send(b"NOOP\r\n")
        assert c.readline().startswith("250 ")


def test_line_too_long_in_pieces_gets_one_reply(tern):
    with smtp_open(tern.port("smtp")) as c:
        for _ in range(4):
            c.send(b"y" * 1500)
            time.sleep(0.05)
        c.send(b"\r\nNOOP\r\n")
        assert c.readline().startswith("500 5.5.2")
        assert c.readline().startswith("250 "), "one long line, one reply"


@pytest.mark.parametrize("service,cmd,ok", [
    ("imap", "a1 NOOP", r"^a1 OK"),
    ("pop3", "NOOP", r"^\+OK"),
])
def test_line_too_long_other_protocols(tern, service, cmd, ok):
    with Conn.open(tern.port(service)) as c:
        c.readline()
        c.send(b"z" * 5000 + b"\r\n")
        c.readline()  # the protocol's own error
        c.send(cmd + "\r\n")
        assert re.match(ok, c.readline())


def test_starttls_discards_pipelined_commands(tern):
    mark = tern.log_mark()
    with smtp_open(tern.port("smtp")) as c:
        c.send("EHLO client.example.test\r\n")
        assert c.smtp_reply()[-1].startswith("250 ")
        c.send(b"STARTTLS\r\nNOOP\r\n")  # one write
        assert c.readline().startswith("220 ")
        c.starttls()
        assert c.nothing_within(0.5), f"answered inside TLS: {c.buf!r}"
        c.send("EHLO client.example.test\r\n")
        reply = c.smtp_reply()
        assert reply[0].startswith("250"), reply
    tern.wait_log(r"event=starttls-discard bytes=6\b", since=mark)


# ---------------------------------------------------------------- shutdown


def test_sigterm_exits_0_and_says_goodbye(tern_instance):
    t = tern_instance()
    children = [pid for role, pid in t.processes().items()
                if role != "parent"]
    assert len(children) == 4
    with smtp_open(t.port("smtp")) as c:
        t.signal(signal.SIGTERM)
        line = c.readline(timeout=5)
        assert line.startswith("421 4.3.2 "), line
        assert t.wait_exit(timeout=10) == 0
    assert not (t.data / "tern.pid").exists()
    wait_until(lambda: not any(pid_alive(p) for p in children), 5,
               what="the roles to be gone")


def test_sigterm_closes_listeners(tern_instance):
    t = tern_instance()
    port = t.port("smtp")
    t.signal(signal.SIGTERM)
    assert t.wait_exit(timeout=10) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_tern_stop(tern_instance):
    t = tern_instance()
    r = run_tern("stop", conf=t.conf, timeout=30)
    assert r.returncode == 0, r.stderr
    # stop returns once the instance is gone (or all but gone).
    assert t.wait_exit(timeout=3) == 0
    r = run_tern("stop", conf=t.conf, timeout=30)
    assert r.returncode == 0 and "not running" in r.stderr


def test_tern_reload(tern_instance):
    t = tern_instance()
    mark = t.log_mark()
    r = run_tern("reload", conf=t.conf, timeout=30)
    assert r.returncode == 0, r.stderr
    t.wait_log(r"parent\[\d+\]: .*event=reloaded", since=mark)
    assert t.proc.poll() is None


# ---------------------------------------------------------------- certificates


def wait_new_cert(port, want_fp, timeout=5.0):
    def seen():
        with tls_open(port) as c:
            return fingerprint(peer_cert_der(c)) == want_fp
    return wait_until(seen, timeout, interval=0.1,
                      what="new connections to get the new certificate")


def test_sighup_swaps_certificate_and_keeps_connections(tern_instance):
    # A long check interval: only SIGHUP can make the new pair appear.
    t = tern_instance(extra_config=["certificate_check_interval 1h"])
    port = t.port("submissions")
    old_fp = cert_file_fingerprint(t.cert_path)
    with tls_open(port) as old:
        assert old.readline().startswith("220 ")
        assert fingerprint(peer_cert_der(old)) == old_fp
        make_selfsigned(t.cert_path, t.key_path)
        new_fp = cert_file_fingerprint(t.cert_path)
        assert new_fp != old_fp
        with tls_open(port) as c:  # no reload yet: still the old pair
            assert fingerprint(peer_cert_der(c)) == old_fp
        t.signal(signal.SIGHUP)
        wait_new_cert(port, new_fp)
        wait_new_cert(t.port("imaps"), new_fp)
        old.send("NOOP\r\n")
        assert old.readline().startswith("250 ")
    assert t.proc.poll() is None


def test_certificate_file_change_detected(tern_instance):
    t = tern_instance(extra_config=["certificate_check_interval 200ms"])
    port = t.port("imaps")
    with tls_open(port) as old:
        assert old.readline().startswith("* OK")
        make_selfsigned(t.cert_path, t.key_path)
        wait_new_cert(port, cert_file_fingerprint(t.cert_path))
        old.send("a NOOP\r\n")
        assert old.readline().startswith("a OK")


def test_broken_certificate_keeps_old_one(tern_instance):
    t = tern_instance(extra_config=["certificate_check_interval 200ms"])
    port = t.port("imaps")
    old_fp = cert_file_fingerprint(t.cert_path)
    mark = t.log_mark()
    t.cert_path.write_text("-----BEGIN CERTIFICATE-----\nnope\n")
    t.wait_log(r"event=certificate-reload-failed", since=mark)
    with tls_open(port) as c:
        assert fingerprint(peer_cert_der(c)) == old_fp
    assert t.proc.poll() is None


# ---------------------------------------------------------------- supervision


def test_killed_front_is_restarted(tern_instance):
    t = tern_instance()
    old = t.role_pid("front")
    assert old
    others = {r: t.role_pid(r) for r in ("lookup", "queue", "store")}
    os.kill(old, signal.SIGKILL)
    new = wait_until(lambda: (p := t.role_pid("front")) and p != old and p,
                     5, what="a new front process")
    assert new != old
    t.wait_log(rf"event=child-ready role=front pid={new}\b", timeout=5)

    def answers():
        try:
            with Conn.open(t.port("smtp"), timeout=2) as c:
                return c.readline().startswith("220 ")
        except (OSError, EOFError):
            return False
    wait_until(answers, 5, interval=0.1, what="SMTP to answer again")
    with tls_open(t.port("imaps")) as c:
        assert c.readline().startswith("* OK")
    assert {r: t.role_pid(r) for r in others} == others, \
        "other roles were restarted too"


@pytest.mark.parametrize("role", ["lookup", "queue", "store"])
def test_killed_role_is_restarted(tern_instance, role):
    t = tern_instance()
    old = t.role_pid(role)
    os.kill(old, signal.SIGKILL)
    new = wait_until(lambda: (p := t.role_pid(role)) and p != old and p,
                     5, what=f"a new {role} process")
    t.wait_log(rf"event=child-ready role={role} pid={new}\b", timeout=5)


# ---------------------------------------------------------------- start-up


def test_second_serve_same_dir_exits_75(tern_instance):
    t = tern_instance()
    rc, err = t.serve_once()
    assert rc == EX_TEMPFAIL, (rc, err)
    assert str(t.proc.pid) in err, err
    assert t.proc.poll() is None, "the first instance died"
    with smtp_open(t.port("smtp")):
        pass


def test_port_in_use_exits_69(tern_instance):
    t = tern_instance(start=False)
    port = t.port("imap")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        rc, err = t.serve_once()
    finally:
        s.close()
    assert rc == EX_UNAVAILABLE, (rc, err)
    assert "imap" in err and f"127.0.0.1:{port}" in err, err
    assert re.search(rf"{re.escape(str(t.conf))}:\d+: ", err), err


def test_missing_certificate_exits_78(tern_instance):
    t = tern_instance(start=False)
    t.cert_path.unlink()
    rc, err = t.serve_once()
    assert rc == EX_CONFIG, (rc, err)
    assert re.search(rf"{re.escape(str(t.conf))}:\d+: ", err), err
    assert HOSTNAME in err


def test_bad_config_serve_exits_78(tern_instance):
    t = tern_instance(start=False, extra_config=["no_such_setting 1"])
    rc, err = t.serve_once()
    assert rc == EX_CONFIG, (rc, err)
    assert re.search(rf"^{re.escape(str(t.conf))}:\d+: ", err, re.M), err


# ---------------------------------------------------------------- limits


def test_per_ip_connection_limit(tern_instance):
    t = tern_instance(listener_config={"smtp": ["max_connections_per_ip 2"]})
    port = t.port("smtp")
    a, b = smtp_open(port), smtp_open(port)
    try:
        with Conn.open(port) as c:
            line = c.readline()
            assert line.startswith("421 4.7.0"), line
            assert c.closed_within(3), "refused connection left open"
        # Another listener is not affected.
        with smtp_open(t.port("submission")):
            pass
    finally:
        a.close()

    def admitted():
        try:
            with Conn.open(port) as c:
                return c.readline().startswith("220 ")
        except (OSError, EOFError):
            return False
    wait_until(admitted, 5, interval=0.1,
               what="a slot to free after a close")
    b.close()


# ---------------------------------------------------------------- PROXY v2

PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def pp2_header(src="192.0.2.7", dst="127.0.0.1", sport=40000, dport=25,
               length=None, cmd=0x21, fam=0x11):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + \
        struct.pack("!HH", sport, dport)
    return PP2_SIG + bytes([cmd, fam]) + \
        struct.pack("!H", len(body) if length is None else length) + body


@pytest.fixture
def proxied(tern_instance):
    return tern_instance(listener_config={"smtp": ["proxy_protocol yes"]})


def test_proxy_v2_header_sets_client_ip(proxied):
    t = proxied
    mark = t.log_mark()
    with Conn.open(t.port("smtp")) as c:
        c.send(pp2_header())
        assert c.readline().startswith("220 ")
        c.send("NOOP\r\n")
        assert c.readline().startswith("250 ")
    t.wait_log(r"event=connect ip=192\.0\.2\.7 ", since=mark)


def test_proxy_v2_header_and_command_in_one_write(proxied):
    with Conn.open(proxied.port("smtp")) as c:
        c.send(pp2_header() + b"NOOP\r\n")
        assert c.readline().startswith("220 ")
        assert c.readline().startswith("250 "), "bytes after the header lost"


def test_proxy_v2_header_in_pieces(proxied):
    with Conn.open(proxied.port("smtp")) as c:
        h = pp2_header()
        for i in range(0, len(h), 5):
            c.send(h[i:i + 5])
            time.sleep(0.02)
        assert c.readline().startswith("220 ")


@pytest.mark.parametrize("data", [
    pytest.param(pp2_header(length=0xFFFF), id="length-over-bound"),
    pytest.param(pp2_header(length=4), id="length-under-address-block"),
    pytest.param(b"EHLO x\r\n", id="smtp-without-header"),
    pytest.param(b"PROXY TCP4 192.0.2.7 127.0.0.1 1 25\r\n", id="v1-text"),
    pytest.param(PP2_SIG + b"\x11\x11\x00\x0c" + b"\x00" * 12,
                 id="version-1-byte"),
    pytest.param(PP2_SIG + b"\x21\x31\x00\x0c" + b"\x00" * 12,
                 id="unix-family"),
    pytest.param(bytes(range(256)), id="garbage"),
])
def test_proxy_v2_bad_header_closes(proxied, data):
    t = proxied
    mark = t.log_mark()
    with Conn.open(t.port("smtp")) as c:
        c.send(data)
        assert c.closed_within(3), "connection left open"
        assert c.buf == b"", f"server spoke before a valid header: {c.buf!r}"
    assert not re.search(rf"event=connect .*local_port={t.port('smtp')}\b",
                         t.log_since(mark))
    # The listener still works.
    with Conn.open(t.port("smtp")) as c:
        c.send(pp2_header())
        assert c.readline().startswith("220 ")


def test_proxy_per_ip_limit_counts_proxied_address(tern_instance):
    t = tern_instance(listener_config={
        "smtp": ["proxy_protocol yes", "max_connections_per_ip 1"]})
    port = t.port("smtp")
    with Conn.open(port) as a:
        a.send(pp2_header(src="192.0.2.7"))
        assert a.readline().startswith("220 ")
        with Conn.open(port) as b:  # another client behind the same proxy
            b.send(pp2_header(src="192.0.2.8"))
            assert b.readline().startswith("220 ")
        with Conn.open(port) as c:  # the same client again
            c.send(pp2_header(src="192.0.2.7"))
            assert c.readline().startswith("421 4.7.0")
