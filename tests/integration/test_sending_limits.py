"""Sending limits: a user over sending_limit_messages, or with a spike far
above their usual rate, has their outbound mail held and their sending
suspended (logins refused), postmaster gets a notice, and `tern user
resume` and `tern queue release` undo it.

As in test_queue_cli.py, outbound mail goes to a relay on a closed
loopback port: every attempt is refused at once and only defers, so
nothing leaves and the messages stay queued."""

import email
import glob
import json
import re
import smtplib
import socket

import pytest

from conftest import DOMAIN, client_tls_context, run_tern, wait_until

ALICE = f"alice@{DOMAIN}"
ADMIN = f"admin@{DOMAIN}"
PW = "a fine password"
ADMIN_PW = "the admin password"
REMOTE = "friend@remote.example"


def closed_tcp_port():
    """A loopback TCP port nothing listens on (connections are refused)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def instance(factory, *limits):
    t = factory(start=False, extra_config=[
        *limits,
        "relay closed {", "\thost 127.0.0.1",
        f"\tport {closed_tcp_port()}", "\ttls none", "}",
        "route everything {", "\trecipient_domains *", "\tvia closed",
        "}"])
    for user, pw in ((ALICE, PW), (ADMIN, ADMIN_PW)):
        r = run_tern("user", "add", user, "--password-stdin", conf=t.conf,
                     input=pw + "\n")
        assert r.returncode == 0, r.stderr
    # postmaster is the admin, not the user under suspicion.
    r = run_tern("alias", "add", f"postmaster@{DOMAIN}", ADMIN, conf=t.conf)
    assert r.returncode == 0, r.stderr
    t.start()
    return t


def login(t):
    s = smtplib.SMTP("127.0.0.1", t.port("submission"), timeout=15)
    s.ehlo("client.example")
    s.starttls(context=client_tls_context())
    s.ehlo("client.example")
    return s


def submit(t, marker, rcpts=(REMOTE,)):
    """Submit a message from alice; returns its queue id."""
    s = login(t)
    try:
        s.login(ALICE, PW)
        code, _ = s.mail(ALICE)
        assert code == 250
        for rcpt in rcpts:
            code, _ = s.rcpt(rcpt)
            assert code == 250
        code, msg = s.data(f"From: {ALICE}\r\nTo: {', '.join(rcpts)}\r\n"
                           f"Subject: {marker}\r\n\r\nbody {marker}\r\n")
        assert code == 250, msg
    finally:
        s.quit()
    m = re.search(rb"queued as ([0-9a-f]{16})", msg)
    assert m, msg
    return m.group(1).decode()


def login_refused(t):
    s = login(t)
    try:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(ALICE, PW)
        assert e.value.smtp_code == 535, e.value
    finally:
        s.quit()


def listed(t):
    """{id: message} from `tern queue list --json`."""
    r = run_tern("queue", "list", "--json", conf=t.conf)
    assert r.returncode == 0, r.stderr
    return {m["id"]: m for m in json.loads(r.stdout)["messages"]}


def admin_notices(t):
    base = t.data / "mail" / DOMAIN / "admin"
    out = []
    for path in sorted(glob.glob(str(base / "new" / "*")) +
                       glob.glob(str(base / "cur" / "*"))):
        with open(path, "rb") as f:
            m = email.message_from_bytes(f.read())
        if "sending suspended" in str(m.get("Subject", "")):
            out.append(m)
    return out


def test_message_limit_holds_suspends_and_resumes(tern_instance):
    t = instance(tern_instance, "sending_limit_messages 3")
    mark = t.log_mark()
    # Three in the hour are within the limit; local mail does not count.
    ids = [submit(t, f"limit-{i}") for i in range(3)]
    submit(t, "limit-local", rcpts=(ADMIN,))
    msgs = listed(t)
    assert all(not msgs[i]["held"] for i in ids), msgs
    assert "event=sending-suspended" not in t.log_since(mark)

    # The fourth is accepted (250), then held with the others.
    over = submit(t, "limit-3")
    t.wait_log(rf"level=warning id={over} event=sending-suspended "
               r"user=alice@example\.test reason=limit messages=4 rcpts=4 "
               r"window=1h usual=0 held=\d+", since=mark)
    t.wait_log(r"lookup\[\d+\]: .*event=user-suspended "
               r"user=alice@example\.test reason=limit", since=mark)
    msgs = listed(t)
    for i in ids + [over]:
        assert msgs[i]["held"] is True, (i, msgs[i])
        assert msgs[i]["auth_user"] == ALICE
    assert re.search(rf"^{over} .*HELD$",
                     run_tern("queue", "list", conf=t.conf).stdout, re.M)

    # Suspended: the next login fails.
    login_refused(t)
    t.wait_log(r"event=auth-failed .*user=alice@example\.test "
               r".*reason=suspended", since=mark)

    # postmaster (the admin) has the notice, once.
    wait_until(lambda: admin_notices(t), 20, interval=0.2,
               what="the notice in admin's Maildir")
    notices = admin_notices(t)
    assert len(notices) == 1, notices
    n = notices[0]
    assert n["Subject"] == f"tern: sending suspended for {ALICE}"
    assert n["From"] == "Mail Delivery System <MAILER-DAEMON@mail.example.test>"
    assert n["Auto-Submitted"] == "auto-generated"
    body = n.get_payload()
    assert f"tern user resume {ALICE}" in body
    assert "tern queue list" in body
    for i in ids + [over]:
        assert f"tern queue release {i}" in body, body
    assert "sending_limit_messages" in body

    # Undo: resume the user, release the messages.
    r = run_tern("user", "resume", ALICE, conf=t.conf)
    assert r.returncode == 0, r.stderr
    for i in ids + [over]:
        r = run_tern("queue", "release", i, conf=t.conf)
        assert r.returncode == 0, r.stderr
    msgs = listed(t)
    assert all(msgs[i]["held"] is False for i in ids + [over]), msgs
    # She can log in and send again: the count starts over after a
    # suspension, so one more message is fine.
    after = submit(t, "limit-after-resume")
    assert listed(t)[after]["held"] is False
    assert t.log_since(mark).count("event=sending-suspended") == 1
    assert len(admin_notices(t)) == 1


def test_suspended_session_cannot_start_another_message(tern_instance):
    t = instance(tern_instance, "sending_limit_messages 1")
    submit(t, "session-0")
    s = login(t)
    try:
        s.login(ALICE, PW)
        # Over the limit in this session: accepted, then suspended.
        code, _ = s.mail(ALICE)
        assert code == 250
        assert s.rcpt(REMOTE)[0] == 250
        code, msg = s.data(f"From: {ALICE}\r\nSubject: session-1\r\n\r\n"
                           "x\r\n")
        assert code == 250, msg
        t.wait_log(r"event=user-suspended user=alice@example\.test")
        # The logged-in session may not start another message.
        code, msg = s.mail(ALICE)
        assert code == 553, msg
    finally:
        s.quit()
    t.wait_log(r"event=sender-refused user=alice@example\.test "
               r".*reason=suspended")


def test_spike_over_the_floor_with_no_history(tern_instance):
    t = instance(tern_instance, "sending_limit_messages 0",
                 "sending_limit_recipients 0", "sending_spike_floor 3")
    mark = t.log_mark()
    ids = [submit(t, f"spike-{i}") for i in range(3)]
    assert "event=sending-suspended" not in t.log_since(mark)
    assert all(not m["held"] for m in listed(t).values())
    over = submit(t, "spike-3")
    t.wait_log(r"event=sending-suspended user=alice@example\.test "
               r"reason=spike messages=4 rcpts=4 window=1h usual=0 held=4",
               since=mark)
    t.wait_log(r"event=user-suspended user=alice@example\.test "
               r"reason=spike", since=mark)
    msgs = listed(t)
    assert all(msgs[i]["held"] for i in ids + [over]), msgs
    login_refused(t)
    wait_until(lambda: admin_notices(t), 20, interval=0.2,
               what="the notice in admin's Maildir")
    assert "spike" in admin_notices(t)[0].get_payload()


def test_recipient_limit(tern_instance):
    t = instance(tern_instance, "sending_limit_recipients 3")
    mark = t.log_mark()
    submit(t, "rcpts-0", rcpts=("a@remote.example", "b@remote.example"))
    submit(t, "rcpts-1", rcpts=("c@remote.example", ADMIN))
    assert "event=sending-suspended" not in t.log_since(mark)
    submit(t, "rcpts-2", rcpts=("d@remote.example",))
    t.wait_log(r"event=sending-suspended user=alice@example\.test "
               r"reason=limit messages=3 rcpts=4 ", since=mark)
    login_refused(t)
