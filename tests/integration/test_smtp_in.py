"""Mail in: the MX, submission and LMTP listeners take mail for local users
into the spool and store delivers it into Maildir — with real clients
(smtplib, swaks) and raw sockets for what clients would never send."""

import glob
import os
import re
import signal
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from conftest import (DOMAIN, Conn, client_tls_context, run_tern, wait_until)

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
PW = "a fine password"


def setup_users(t):
    for addr in (ALICE, BOB):
        r = run_tern("user", "add", addr, "--password-stdin", conf=t.conf,
                     input=PW + "\n")
        assert r.returncode == 0, r.stderr
    r = run_tern("alias", "add", f"postmaster@{DOMAIN}", ALICE, conf=t.conf)
    assert r.returncode == 0, r.stderr
    r = run_tern("alias", "add", f"team@{DOMAIN}", f"{ALICE},{BOB}",
                 conf=t.conf)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def tern(tern_module_instance):
    t = tern_module_instance(start=False)
    setup_users(t)
    t.start()
    return t


def maildir(t, local):
    return t.data / "mail" / DOMAIN / local


def messages(t, local):
    # Delivered mail is in new/ until an IMAP client has seen it.
    files = sorted(glob.glob(str(maildir(t, local) / "new" / "*")) +
                   glob.glob(str(maildir(t, local) / "cur" / "*")))
    return [open(f, "rb").read() for f in files]


def wait_for_message(t, local, marker, timeout=10):
    def find():
        for m in messages(t, local):
            if marker.encode() in m:
                return m
        return None
    return wait_until(find, timeout, what=f"a message with {marker} for "
                                          f"{local}")


def message(marker, sender=ALICE, to=ALICE, extra=""):
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {marker}\r\n"
            f"Message-ID: <{marker}@test>\r\n{extra}\r\nbody {marker}\r\n")


def mx(t):
    return smplib_mx(t)


def smplib_mx(t):
    s = smtplib.SMTP("127.0.0.1", t.port("smtp"), timeout=15)
    s.ehlo("sender.example")
    return s


def submission(t, user=ALICE):
    s = smtplib.SMTP("127.0.0.1", t.port("submission"), timeout=15)
    s.ehlo("client.example")
    s.starttls(context=client_tls_context())
    s.ehlo("client.example")
    s.login(user, PW)
    return s


# ---------------------------------------------------------------- MX


def test_mx_delivers_to_maildir(tern):
    s = smplib_mx(tern)
    assert "pipelining" in s.esmtp_features
    assert "chunking" in s.esmtp_features
    s.sendmail("someone@remote.example", [ALICE], message("mx-basic"))
    s.quit()
    m = wait_for_message(tern, "alice", "mx-basic")
    assert m.startswith(b"Return-Path: <someone@remote.example>\n"
                        b"Delivered-To: alice@example.test\n")
    assert b"\nReceived: from sender.example" in m
    assert b"\r\n" not in m  # Maildir files use LF
    # queue logs once store has answered, a moment after the file is in.
    wait_until(lambda: re.search(r"event=delivered to=<alice@example\.test> relay=local ",
                                 tern.log(), re.M), 10,
               what="event=delivered")


def test_unknown_user_550(tern):
    s = smplib_mx(tern)
    s.mail("someone@remote.example")
    code, msg = s.rcpt(f"nobody@{DOMAIN}")
    assert code == 550 and b"5.1.1" in msg
    s.quit()


@pytest.mark.parametrize("rcpt", [
    "victim@remote.example",
    f"victim%remote.example@{DOMAIN}",
    "@relay.example:victim@remote.example",
    f"remote.example!victim@{DOMAIN}",
    f"\"victim@remote.example\"@{DOMAIN}",
    "victim@remote.example.",
])
def test_never_an_open_relay(tern, rcpt):
    c = Conn.open(tern.port("smtp"))
    assert c.smtp_reply()[0].startswith("220")
    c.send("EHLO relay.test\r\n")
    c.smtp_reply()
    c.send("MAIL FROM:<spammer@remote.example>\r\n")
    assert c.smtp_reply()[0].startswith("250")
    c.send(f"RCPT TO:<{rcpt}>\r\n")
    reply = c.smtp_reply()[-1]
    assert reply[0] in "45", (rcpt, reply)
    c.close()


def test_relay_denied_after_failed_auth(tern):
    s = smtplib.SMTP("127.0.0.1", tern.port("submission"), timeout=15)
    s.starttls(context=client_tls_context())
    s.ehlo("x")
    with pytest.raises(smtplib.SMTPAuthenticationError):
        s.login(ALICE, "wrong password")
    code, _ = s.mail(ALICE)
    assert code == 530
    s.quit()


def test_alias_expands_to_users(tern):
    s = smplib_mx(tern)
    s.sendmail("", [f"team@{DOMAIN}"], message("alias-team", to="team"))
    s.quit()
    a = wait_for_message(tern, "alice", "alias-team")
    b = wait_for_message(tern, "bob", "alias-team")
    assert b"Delivered-To: alice@example.test" in a
    assert b"Delivered-To: bob@example.test" in b
    assert a.startswith(b"Return-Path: <>\n")


def test_subaddress_goes_to_the_user(tern):
    s = smplib_mx(tern)
    s.sendmail("x@remote.example", [f"Alice+News@{DOMAIN.upper()}"],
               message("subaddress"))
    s.quit()
    wait_for_message(tern, "alice", "subaddress")


def test_postmaster_without_domain(tern):
    c = Conn.open(tern.port("smtp"))
    c.smtp_reply()
    c.send("HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\n")
    c.smtp_reply()
    c.smtp_reply()
    assert c.smtp_reply()[0].startswith("250")
    c.close()


# ---------------------------------------------------------------- data


@pytest.mark.parametrize("smuggle", [
    b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\r\n.\n", b"\r.\r\n"])
def test_smuggling_never_ends_a_message_early(tern, smuggle):
    marker = f"smuggle-{smuggle.hex()}"
    c = Conn.open(tern.port("smtp"))
    c.smtp_reply()
    c.send(b"EHLO x\r\nMAIL FROM:<a@remote.example>\r\n"
           b"RCPT TO:<" + ALICE.encode() + b">\r\nDATA\r\n")
    c.smtp_reply()
    c.smtp_reply()
    c.smtp_reply()
    assert c.smtp_reply()[0].startswith("354")
    c.send(b"Subject: " + marker.encode() + b"\r\n\r\nbefore" + smuggle +
           b"MAIL FROM:<evil@remote.example>\r\nRCPT TO:<" +
           BOB.encode() + b">\r\nDATA\r\n\r\nsmuggled\r\n.\r\n")
    assert c.smtp_reply()[0].startswith("250")
    c.send(b"QUIT\r\n")
    c.close()
    m = wait_for_message(tern, "alice", marker)
    assert b"smuggled" in m and b"evil@remote.example" in m
    time.sleep(0.5)
    assert not any(marker.encode() in x or b"smuggled" in x
                   for x in messages(tern, "bob") if marker.encode() in x)


def test_bare_lf_is_normalized(tern):
    c = Conn.open(tern.port("smtp"))
    c.smtp_reply()
    c.send(b"HELO x\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<" +
           ALICE.encode() + b">\r\nDATA\r\n")
    for _ in range(4):
        c.smtp_reply()
    c.send(b"Subject: bare-lf\r\n\r\none\ntwo\rthree\r\n..dot\r\n.\r\n")
    assert c.smtp_reply()[0].startswith("250")
    c.close()
    m = wait_for_message(tern, "alice", "bare-lf")
    assert b"one\ntwo\nthree\n.dot\n" in m


def test_bdat_chunks(tern):
    body = b"Subject: bdat-chunks\r\n\r\nchunked body\r\n"
    c = Conn.open(tern.port("smtp"))
    c.smtp_reply()
    c.send(b"EHLO x\r\n")
    assert any("CHUNKING" in l for l in c.smtp_reply())
    c.send(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<" + ALICE.encode() +
           b">\r\n")
    c.smtp_reply()
    c.smtp_reply()
    c.send(b"BDAT 10\r\n" + body[:10])
    assert c.smtp_reply()[0].startswith("250")
    rest = body[10:]
    c.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
    assert c.smtp_reply()[0].startswith("250")
    c.close()
    m = wait_for_message(tern, "alice", "bdat-chunks")
    assert b"chunked body" in m


def test_big_messages_with_commands_right_behind(tern):
    """Message bytes are read in big pieces; what follows a message in the
    same piece (the next transaction, QUIT) is still read in order, after
    the message's reply, and every byte of the body arrives."""
    line = b"0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"
    body = line * 5000  # 320 KB
    c = Conn.open(tern.port("smtp"))
    c.smtp_reply()
    c.send(b"EHLO x\r\n")
    c.smtp_reply()
    c.send(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<" + ALICE.encode() +
           b">\r\nDATA\r\n")
    c.smtp_reply()
    c.smtp_reply()
    assert c.smtp_reply()[0].startswith("354")
    # One send: the whole first message, its end, then a BDAT
    # transaction of a second big message, then QUIT.
    c.send(b"Subject: big-one\r\n\r\n" + body + b".\r\n" +
           b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<" +
           ALICE.encode() + b">\r\n" +
           b"BDAT %d LAST\r\n" % (len(body) + 20) +
           b"Subject: big-two\r\n\r\n" + body + b"QUIT\r\n")
    assert c.smtp_reply()[0].startswith("250")
    assert c.smtp_reply()[0].startswith("250")
    assert c.smtp_reply()[0].startswith("250")
    assert c.smtp_reply()[0].startswith("250")
    assert c.smtp_reply()[0].startswith("221")
    c.close()
    want = body.replace(b"\r\n", b"\n")
    for marker in ("big-one", "big-two"):
        m = wait_for_message(tern, "alice", marker)
        assert m.endswith(b"\n\n" + want)


def test_size_limit(tern):
    s = smplib_mx(tern)
    limit = int(s.esmtp_features["size"])
    code, msg = s.mail("a@remote.example", ["SIZE=%d" % (limit + 1)])
    assert code == 552
    s.quit()


# ---------------------------------------------------------------- submission


def test_submission_sends_as_own_address(tern):
    s = submission(tern)
    s.sendmail(ALICE, [BOB], "Subject: from-alice\r\n\r\nhi\r\n")
    s.quit()
    m = wait_for_message(tern, "bob", "from-alice")
    # RFC 6409: Message-ID and Date added when missing.
    assert re.search(rb"\nMessage-I[dD]: <", m)
    assert b"\nDate: " in m
    assert b"ESMTPSA" in m
    # The one log line per message.
    tern.wait_log(r"(?m)event=accepted queue_id=[0-9a-f]{16} ip=127\.0\.0\.1 "
                  r"from=<alice@example\.test> size=\d+ rcpts=1 "
                  r"tls=TLSv1\.3 auth=alice@example\.test$", timeout=5)


def test_submission_refuses_other_senders(tern):
    s = submission(tern)
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        s.sendmail(BOB, [ALICE], "Subject: forged\r\n\r\nx\r\n")
    assert e.value.smtp_code == 553
    s.quit()


def test_submission_checks_the_from_header(tern):
    """The From: header must be one address the user may send as (her
    own or an alias of hers), like the envelope sender: 553 5.7.1."""
    s = submission(tern)
    for frm in (BOB, f"Alice <{ALICE}>, {BOB}", "someone@remote.example"):
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail(ALICE, [BOB],
                       f"From: {frm}\r\nSubject: forged from\r\n\r\nx\r\n")
        assert e.value.smtp_code == 553, frm
        assert b"5.7.1" in e.value.smtp_error
    # Her own address, in a display-name form, and an alias of hers pass.
    for frm in (f'"Alice A." <{ALICE}>', f"postmaster@{DOMAIN}"):
        s.sendmail(ALICE, [BOB],
                   f"From: {frm}\r\nSubject: from ok {frm}\r\n\r\nx\r\n")
    s.quit()
    wait_for_message(tern, "bob", f"from ok postmaster@{DOMAIN}")
    assert tern.wait_log(r"event=from-refused from=<bob@example\.test> "
                         r"user=alice@example\.test", timeout=5)


def test_submission_to_remote_is_queued(tern):
    s = submission(tern)
    s.sendmail(ALICE, ["friend@remote.example"],
               "Subject: outbound\r\n\r\nx\r\n")
    s.quit()
    # Queued for outbound delivery (test_smtp_out.py follows it out).
    tern.wait_log(r"event=rcpt to=<friend@remote\.example> .*local=no",
                  timeout=10)


def test_swaks_mx_and_submission(tern):
    r = subprocess.run(["swaks", "--server",
                        f"127.0.0.1:{tern.port('smtp')}", "--to", ALICE,
                        "--from", "x@remote.example", "--header",
                        "Subject: swaks-mx", "--pipeline"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout
    wait_for_message(tern, "alice", "swaks-mx")
    r = subprocess.run(["swaks", "--server",
                        f"127.0.0.1:{tern.port('submissions')}",
                        "--tls-on-connect", "--auth", "LOGIN",
                        "--auth-user", BOB, "--auth-password", PW,
                        "--from", BOB, "--to", ALICE, "--header",
                        "Subject: swaks-sub"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout
    wait_for_message(tern, "alice", "swaks-sub")


# ---------------------------------------------------------------- LMTP


def test_lmtp_per_recipient(tern):
    l = smtplib.LMTP("127.0.0.1", tern.port("lmtp"), timeout=15)
    l.ehlo("mta.local")
    refused = l.sendmail("x@remote.example", [ALICE, f"ghost@{DOMAIN}", BOB],
                         message("lmtp-multi"))
    assert f"ghost@{DOMAIN}" in refused
    l.quit()
    wait_for_message(tern, "alice", "lmtp-multi")
    wait_for_message(tern, "bob", "lmtp-multi")


# ---------------------------------------------------------------- durability


class Load:
    """Clients sending one message per session, each marked PREFIX-n-i in
    its Subject, until stopped; acked holds the markers that got a 250."""

    def __init__(self, t, prefix, clients, per_client):
        self.t, self.prefix = t, prefix
        self.acked, self.lock = [], threading.Lock()
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self.send, args=(n, per_client))
            for n in range(clients)]
        for th in self.threads:
            th.start()

    def send(self, n, per_client):
        i = 0
        while not self.stopping.is_set() and i < per_client:
            marker = f"{self.prefix}-{n}-{i}"
            i += 1
            try:
                s = smtplib.SMTP("127.0.0.1", self.t.port("smtp"), timeout=10)
                s.sendmail("load@remote.example", [ALICE], message(marker))
                with self.lock:
                    self.acked.append(marker)
                s.quit()
            except (smtplib.SMTPException, OSError):
                time.sleep(0.05)

    def wait_for_more(self, n, interval=0.05):
        # Under load: once some messages are in (a slow or busy machine
        # takes longer to get there), not after a fixed time.
        before = len(self.acked)
        wait_until(lambda: len(self.acked) > before + n, 30,
                   interval=interval, what="the load to get going")

    def stop(self):
        self.stopping.set()
        for th in self.threads:
            th.join(timeout=30)

    def check_delivered_once(self):
        """Every acknowledged message is in alice's mailbox, once."""
        t = self.t

        def all_delivered():
            got = b"\n".join(messages(t, "alice"))
            return all(f"Subject: {m}\n".encode() in got for m in self.acked)
        wait_until(all_delivered, 60, what="every acknowledged message")
        counts = {}
        pattern = rb"Subject: (" + self.prefix.encode() + rb"-\d+-\d+)\n"
        for m in messages(t, "alice"):
            s = re.search(pattern, m)
            if s:
                counts[s.group(1)] = counts.get(s.group(1), 0) + 1
        dup = [k for k, v in counts.items() if v > 1]
        assert not dup, f"delivered twice: {dup[:5]}"


def test_nothing_acknowledged_is_lost(tern_instance):
    """Kill queue, then front, with SIGKILL while clients send: every
    message that got a 250 ends up in the mailbox exactly once."""
    t = tern_instance(start=False)
    setup_users(t)
    t.start()
    load = Load(t, "dur", clients=4, per_client=400)
    load.wait_for_more(20)
    os.kill(t.role_pid("queue"), signal.SIGKILL)
    time.sleep(1.5)
    os.kill(t.role_pid("front"), signal.SIGKILL)
    time.sleep(1.5)
    load.stop()
    load.check_delivered_once()


def test_stop_under_load_loses_nothing(tern_instance):
    """SIGTERM while clients send: queue finishes the group commits under
    way (their fsyncs run on a thread) and answers them before it exits;
    after a restart every message that got a 250 is in the mailbox once."""
    t = tern_instance(start=False)
    setup_users(t)
    t.start()
    load = Load(t, "stop", clients=8, per_client=1000)
    # Several stops, each under load: a batch is not always under way
    # at the moment of the signal.
    for _ in range(4):
        load.wait_for_more(20, interval=0.02)
        mark = t.log_mark()
        t.signal(signal.SIGTERM)
        assert t.wait_exit() == 0
        log = t.log_since(mark)
        assert "event=commit-cut" not in log, log[-2000:]
        t.start()
    load.stop()
    load.check_delivered_once()


def test_client_vanishing_mid_transaction(tern):
    """A client that drops the connection in the middle of MAIL/RCPT or
    DATA leaves front running and nothing in the mailbox."""
    front = tern.role_pid("front")
    for stage in (b"RCPT", b"DATA"):
        c = Conn.open(tern.port("smtp"))
        c.smtp_reply()
        c.send(b"EHLO x\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<" +
               ALICE.encode() + b">\r\n")
        c.smtp_reply()
        c.smtp_reply()
        c.smtp_reply()
        if stage == b"DATA":
            c.send(b"DATA\r\n")
            assert c.smtp_reply()[0].startswith("354")
            c.send(b"Subject: vanished\r\n\r\nhalf a mess")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
    time.sleep(0.5)
    assert tern.role_pid("front") == front, "front restarted: it crashed"
    s = smplib_mx(tern)
    assert s.noop()[0] == 250
    s.quit()
    assert not any(b"vanished" in m for m in messages(tern, "alice"))


def test_sender_may_use_an_alias_of_hers(tern):
    # postmaster@ is an alias of alice: she may send as it; bob may not.
    s = submission(tern)
    s.sendmail(f"postmaster@{DOMAIN}", [BOB],
               "Subject: as-postmaster\r\n\r\nx\r\n")
    s.quit()
    wait_for_message(tern, "bob", "as-postmaster")
    s = submission(tern, user=BOB)
    with pytest.raises(smtplib.SMTPSenderRefused):
        s.sendmail(f"postmaster@{DOMAIN}", [ALICE], "Subject: no\r\n\r\n")
    s.quit()


def test_suspended_user_inbound_policy(tern_instance):
    t = tern_instance(start=False, extra_config=["suspended_inbound reject"])
    setup_users(t)
    assert run_tern("user", "suspend", BOB, conf=t.conf).returncode == 0
    t.start()
    s = smplib_mx(t)
    s.mail("x@remote.example")
    code, msg = s.rcpt(BOB)
    assert code == 550 and b"5.2.1" in msg
    assert s.rcpt(ALICE)[0] == 250
    s.quit()


def test_quit_frees_the_per_ip_slot_at_once(tern_instance):
    t = tern_instance(listener_config={"smtp": ["max_connections_per_ip 1"]})
    for _ in range(20):
        s = smtplib.SMTP("127.0.0.1", t.port("smtp"), timeout=10)
        assert s.noop()[0] == 250
        s.quit()


def test_a_burst_is_delivered_promptly(tern_instance):
    """Many sessions finishing together (group commit) and many deliveries
    out with store at once: every message reaches the mailbox, none waits
    for a timer that drifted away."""
    t = tern_instance(start=False,
                      listener_config={"smtp":
                                       ["max_connections_per_ip 100"]})
    setup_users(t)
    t.start()
    sent = []
    lock = threading.Lock()

    def sender(n):
        s = smtplib.SMTP("127.0.0.1", t.port("smtp"), timeout=30)
        for i in range(30):
            marker = f"burst-{n}-{i}"
            s.sendmail("load@remote.example", [BOB], message(marker, to=BOB))
            with lock:
                sent.append(marker)
        s.quit()

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert len(sent) == 600
    wait_until(lambda: len(messages(t, "bob")) >= 600, 30,
               what="600 messages in bob's mailbox")
