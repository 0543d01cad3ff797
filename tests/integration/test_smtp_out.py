"""Outbound delivery end to end, all on loopback: a real unbound serves MX,
A and null MX records; a second tern instance is the remote MX (and, on
its submission port with AUTH, the smarthost); Postfix's smtp-sink plays
remote servers that refuse (5xx) or defer (4xx). The sender's bounces
(RFC 3464 DSNs) are read from its own Maildir."""

import email
import glob
import os
import shutil
import smtplib
import subprocess
import tempfile
import time

import pytest

from conftest import (DOMAIN, UnboundServer, as_sent, client_tls_context,
                      dkim_records, dkim_signatures_verify, run_tern,
                      wait_until)

ALICE = f"alice@{DOMAIN}"
PW = "outbound password"
BOB = "bob@remote.example"
BOB_PW = "bob relay password"
SMTP_SINK = "/usr/sbin/smtp-sink"

RECORDS = [
    "remote.example. MX 10 mx.remote.example.",
    "mx.remote.example. A 127.0.0.1",
    "mail.remote.example. A 127.0.0.1",
    "implicit.example. A 127.0.0.1",
    "nullmx.example. MX 0 .",
    "hard.example. MX 10 mx.hard.example.",
    "mx.hard.example. A 127.0.0.3",
    "soft.example. MX 10 mx.soft.example.",
    "mx.soft.example. A 127.0.0.4",
    "backup.example. MX 10 mx1.backup.example.",
    "backup.example. MX 20 mx.remote.example.",
    "mx1.backup.example. A 127.0.0.5",
    "xn--bcher-kva.example. MX 10 mx.remote.example.",
]


@pytest.fixture(scope="module")
def dns():
    d = UnboundServer(RECORDS, probe=("remote.example", "MX"))
    yield d.address
    d.close()


def add_user(t, address, pw):
    r = run_tern("user", "add", address, "--password-stdin", conf=t.conf,
                 input=pw + "\n")
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def remote(tern_module_instance, dns):
    """The remote MX for remote.example, implicit.example and
    backup.example (listening on 127.0.0.1)."""
    t = tern_module_instance(
        start=False, extra_config=[f"resolver {dns}"],
        quickstart_args=["--domain", "remote.example",
                         "--hostname", "mail.remote.example"])
    for d in ("implicit.example", "backup.example", "bücher.example"):
        r = run_tern("domain", "add", d, conf=t.conf)
        assert r.returncode == 0, r.stderr
    add_user(t, BOB, BOB_PW)
    add_user(t, "carol@implicit.example", "carol pw")
    add_user(t, "dave@backup.example", "dave pw")
    add_user(t, "erin@bücher.example", "erin pw")
    # bob, the relay's AUTH user, may send as alice (as an SES account
    # may send for its verified domain).
    r = run_tern("domain", "add", DOMAIN, conf=t.conf)
    assert r.returncode == 0, r.stderr
    r = run_tern("alias", "add", ALICE, BOB, conf=t.conf)
    assert r.returncode == 0, r.stderr
    t.start()
    return t


@pytest.fixture(scope="module")
def sender(tern_module_instance, dns, remote):
    """example.test, delivering by MX; every MX listens on the remote's
    SMTP port, on its own loopback address."""
    t = tern_module_instance(
        start=False,
        extra_config=[f"resolver {dns}",
                      f"outbound_mx_port {remote.port('smtp')}",
                      "outbound_ipv6 no",
                      "outbound_connect_timeout 2s",
                      "queue_retry_first 1s",
                      "queue_retry_max 2s",
                      "queue_delay_warning 3s"])
    add_user(t, ALICE, PW)
    t.start()
    return t


def maildir_raw(t, domain, local):
    base = t.data / "mail" / domain / local
    out = []
    for path in sorted(glob.glob(str(base / "new" / "*")) +
                       glob.glob(str(base / "cur" / "*"))):
        with open(path, "rb") as f:
            out.append(f.read())
    return out


def maildir_messages(t, domain, local):
    return [email.message_from_bytes(r)
            for r in maildir_raw(t, domain, local)]


def wait_message(t, domain, local, subject, timeout=20):
    found = []

    def arrived():
        found[:] = [m for m in maildir_messages(t, domain, local)
                    if subject in str(m.get("Subject", ""))]
        return bool(found)
    wait_until(arrived, timeout, interval=0.2,
               what=f"{subject!r} in {local}@{domain}'s Maildir")
    return found


def submit(t, rcpts, subject, rcpt_options=(), mail_options=()):
    msg = (f"From: {ALICE}\r\nTo: {', '.join(rcpts)}\r\n"
           f"Subject: {subject}\r\n\r\nHello from the outbound tests.\r\n"
           f".leading dot line\r\n")
    with smtplib.SMTP("127.0.0.1", t.port("submission"), timeout=30) as s:
        s.starttls(context=client_tls_context())
        s.login(ALICE, PW)
        s.sendmail(ALICE, rcpts, msg.encode(),
                   mail_options=list(mail_options),
                   rcpt_options=list(rcpt_options))


def bounce_for(t, subject, timeout=20):
    """The DSN in alice's Maildir about the message with this subject."""
    found = []

    def arrived():
        for m in maildir_messages(t, DOMAIN, "alice"):
            if m.get_content_type() != "multipart/report":
                continue
            if subject in m.as_string():
                found[:] = [m]
                return True
        return False
    wait_until(arrived, timeout, interval=0.2, what=f"a DSN for {subject!r}")
    return found[0]


def dsn_fields(report):
    """The per-recipient fields of the message/delivery-status part."""
    for part in report.walk():
        if part.get_content_type() == "message/delivery-status":
            blocks = part.get_payload()
            # email parses the status part into header blocks
            return [dict(b.items()) for b in blocks][1:]
    raise AssertionError("no message/delivery-status part")


class Sink:
    """Postfix's smtp-sink on ADDR:PORT, saving each message."""

    def __init__(self, addr, port, *opts):
        self.dir = tempfile.mkdtemp(prefix="tern-sink-")
        os.chmod(self.dir, 0o777)
        cmd = [SMTP_SINK]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        cmd += ["-d", os.path.join(self.dir, "%Y%m%d%H%M%S."), *opts,
                f"{addr}:{port}", "64"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: self._up(addr, port), 10, what="smtp-sink")

    @staticmethod
    def _up(addr, port):
        import socket
        try:
            socket.create_connection((addr, port), timeout=1).close()
            return True
        except OSError:
            return False

    def messages(self):
        return sorted(glob.glob(os.path.join(self.dir, "*")))

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def test_mx_delivery_with_starttls(sender, remote):
    submit(sender, [BOB], "to the MX")
    (m,) = wait_message(remote, "remote.example", "bob", "to the MX")
    received = m.get_all("Received")
    # The remote's Received: shows the sender came in over TLS.
    assert any("mail.example.test" in r and "TLS" in r for r in received), \
        received
    assert "..leading" not in m.get_payload()
    assert ".leading dot line" in m.get_payload()
    assert sender.wait_log(r"event=delivered to=<bob@remote\.example> "
                           r"relay=mx\.remote\.example", timeout=5)


def test_implicit_mx_and_next_mx(sender, remote):
    submit(sender, ["carol@implicit.example"], "implicit mx")
    wait_message(remote, "implicit.example", "carol", "implicit mx")
    # backup.example: the best MX is down, the second takes it.
    submit(sender, ["dave@backup.example"], "second mx")
    wait_message(remote, "backup.example", "dave", "second mx")
    assert sender.wait_log(r"event=connect-failed to=mx1\.backup\.example"
                           r"\[127\.0\.0\.5\]", timeout=5)


def test_idn_domain_is_looked_up_as_its_a_label(sender, remote):
    """SMTPUTF8 mail to a U-label domain: the MX lookup uses the A-label
    (xn--bcher-kva.example) and the remote gets the address in UTF-8."""
    submit(sender, ["erin@bücher.example"], "idn domain",
           mail_options=["SMTPUTF8"])
    wait_message(remote, "xn--bcher-kva.example", "erin", "idn domain")


def test_null_mx_bounces_at_once(sender):
    submit(sender, ["x@nullmx.example"], "null mx")
    dsn = bounce_for(sender, "null mx")
    assert dsn["From"].startswith("Mail Delivery System")
    assert dsn["To"] == ALICE or ALICE in dsn["To"]
    (f,) = dsn_fields(dsn)
    assert f["Action"] == "failed"
    assert f["Status"] == "5.1.10"
    assert "x@nullmx.example" in f["Final-Recipient"]


def test_remote_5xx_bounces_with_the_reply(sender, remote):
    sink = Sink("127.0.0.3", remote.port("smtp"), "-f", "RCPT")
    try:
        submit(sender, ["nobody@hard.example"], "hard failure")
        dsn = bounce_for(sender, "hard failure")
        (f,) = dsn_fields(dsn)
        assert f["Action"] == "failed"
        assert f["Status"].startswith("5.")
        assert f["Remote-MTA"] == "dns; mx.hard.example"
        assert f["Diagnostic-Code"].startswith("smtp; 5")
        assert sink.messages() == []
        # Signed (by lookup, for queue) with the keys of the parent of
        # the From: domain, MAILER-DAEMON@mail.example.test.
        (raw,) = [r for r in maildir_raw(sender, DOMAIN, "alice")
                  if b"hard failure" in r and b"multipart/report" in r]
        assert dkim_signatures_verify(as_sent(raw), dkim_records(sender)) \
            == [DOMAIN, DOMAIN]
    finally:
        sink.close()


def test_notify_never_means_no_bounce(sender, remote):
    sink = Sink("127.0.0.3", remote.port("smtp"), "-f", "RCPT")
    try:
        mark = sender.log_mark()
        submit(sender, ["never@hard.example"], "notify never",
               rcpt_options=["NOTIFY=NEVER"])
        assert sender.wait_log(r"event=failed to=<never@hard\.example>",
                               timeout=20, since=mark)
        time.sleep(2)
        assert not any("notify never" in m.as_string()
                       for m in maildir_messages(sender, DOMAIN, "alice"))
    finally:
        sink.close()


def test_4xx_is_retried_and_survives_a_restart(sender, remote):
    port = remote.port("smtp")
    sink = Sink("127.0.0.4", port, "-r", "RCPT")
    try:
        mark = sender.log_mark()
        submit(sender, ["later@soft.example"], "soft then ok")
        assert sender.wait_log(r"event=deferred to=<later@soft\.example> "
                               r"relay=mx\.soft\.example status=4",
                               timeout=20, since=mark)
        assert sink.messages() == []
        # Nothing is lost over a restart of the whole instance.
        sender.stop()
        sender.start()
    finally:
        sink.close()
    sink = Sink("127.0.0.4", port)
    try:
        wait_until(lambda: len(sink.messages()) == 1, 30, interval=0.2,
                   what="the retry to reach the sink")
        time.sleep(3)
        assert len(sink.messages()) == 1  # delivered once, not again
        with open(sink.messages()[0], "rb") as f:
            assert b"Subject: soft then ok" in f.read()
    finally:
        sink.close()


def test_delay_notice_once_then_delivery(sender, remote):
    """A recipient deferred past queue_delay_warning gets its sender one
    "delayed" DSN (NOTIFY=DELAY), then the mail still goes through."""
    port = remote.port("smtp")
    sink = Sink("127.0.0.4", port, "-r", "RCPT")
    try:
        submit(sender, ["slow@soft.example"], "delay notice",
               rcpt_options=["NOTIFY=DELAY,FAILURE"])
        dsn = bounce_for(sender, "delay notice")
        assert dsn["Subject"].startswith("Delayed Mail")
        (f,) = dsn_fields(dsn)
        assert f["Action"] == "delayed"
        assert f["Status"].startswith("4.")
        assert "Will-Retry-Until" in f
        time.sleep(3)
        notices = [m for m in maildir_messages(sender, DOMAIN, "alice")
                   if m.get_content_type() == "multipart/report"
                   and "delay notice" in m.as_string()]
        assert len(notices) == 1
    finally:
        sink.close()
    sink = Sink("127.0.0.4", port)
    try:
        wait_until(lambda: any(b"Subject: delay notice" in open(p, "rb").read()
                               for p in sink.messages()), 30, interval=0.2,
                   what="the delayed message to reach the sink")
    finally:
        sink.close()


def test_connection_reuse(tern_instance, dns, remote):
    """Messages to one destination in a row share one SMTP session."""
    t = tern_instance(
        start=False,
        extra_config=[f"resolver {dns}",
                      f"outbound_mx_port {remote.port('smtp')}",
                      "outbound_ipv6 no",
                      "outbound_destination_concurrency 1"])
    add_user(t, ALICE, PW)
    t.start()
    mark = remote.log_mark()
    with smtplib.SMTP("127.0.0.1", t.port("submission"), timeout=30) as s:
        s.starttls(context=client_tls_context())
        s.login(ALICE, PW)
        for i in range(5):
            s.sendmail(ALICE, [BOB], f"From: {ALICE}\r\nTo: {BOB}\r\n"
                       f"Subject: reuse {i}\r\n\r\nbody {i}\r\n")
    for i in range(5):
        wait_message(remote, "remote.example", "bob", f"reuse {i}")
    connects = remote.log_since(mark).count("service=smtp ")
    assert 1 <= connects < 5, connects


@pytest.mark.parametrize("tls,service", [("starttls", "submission"),
                                         ("tls", "submissions")])
def test_relay_with_auth_and_verified_tls(tern_instance, dns, remote, tls,
                                          service):
    """quickstart --relay: everything leaves through the remote's
    submission port (STARTTLS) or submissions port (implicit TLS, as SES
    and others offer on 465), the certificate verified, AUTH as bob."""
    pwfile = tempfile.NamedTemporaryFile("w", delete=False)
    pwfile.write(BOB_PW + "\n")
    pwfile.close()
    try:
        t = tern_instance(
            start=False,
            extra_config=[f"resolver {dns}"],
            quickstart_args=[
                "--relay", f"mail.remote.example:{remote.port(service)}",
                "--relay-tls", tls,
                "--relay-user", BOB, "--relay-password-file", pwfile.name])
    finally:
        os.unlink(pwfile.name)
    ca = t.root / "relay-ca.pem"
    shutil.copy(remote.data / "tls" / "mail.remote.example.crt", ca)
    os.chmod(ca, 0o644)
    text = t.conf.read_text()
    assert "relay main {" in text and "route all {" in text
    t.conf.write_text(text.replace("relay main {\n",
                                   f"relay main {{\n\tca_file {ca}\n"))
    add_user(t, ALICE, PW)
    t.start()
    subject = f"through the relay ({tls})"
    submit(t, [BOB], subject)
    (m,) = wait_message(remote, "remote.example", "bob", subject)
    # The relay saw an authenticated submission from bob over TLS.
    assert any("bob@remote.example" in r or "Authenticated" in r
               or "auth" in r.lower() for r in m.get_all("Received"))
    assert t.wait_log(r"event=delivered to=<bob@remote\.example> "
                      r"relay=mail\.remote\.example .* tls=\"TLSv1\.3",
                      timeout=5)


def test_relay_with_untrusted_certificate_defers(tern_instance, dns,
                                                 remote):
    """A relay whose certificate does not verify gets nothing, not even
    in plaintext: the mail stays queued."""
    t = tern_instance(
        start=False,
        extra_config=[f"resolver {dns}", "queue_retry_first 1s"],
        quickstart_args=[
            "--relay", f"mail.remote.example:{remote.port('submission')}"])
    add_user(t, ALICE, PW)
    t.start()
    mark = t.log_mark()
    submit(t, [BOB], "untrusted relay")
    assert t.wait_log(r"event=deferred to=<bob@remote\.example> .*"
                      r"certificate", timeout=20, since=mark)
    r = run_tern("queue", "list", "--json", conf=t.conf)
    assert r.returncode == 0, r.stderr
    assert "bob@remote.example" in r.stdout
