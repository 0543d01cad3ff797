"""tern queue: list, show, hold, release, retry and delete against a running
instance, with a message submitted by a real client (smtplib) to a remote
recipient.

The instance routes all outbound mail to a relay on a closed loopback
port, so that every outbound attempt is refused at once and only defers
the recipient (no DNS is involved, nothing waits on a timeout): the
message stays queued, pending, for the 5 days before it expires. The
tests assert only what holds whether or not an attempt was made yet."""

import json
import re
import smtplib
import socket

import pytest

from conftest import DOMAIN, client_tls_context, run_tern, wait_until

ALICE = f"alice@{DOMAIN}"
PW = "a fine password"
REMOTE = "friend@remote.example"

EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_USAGE = 64


def closed_tcp_port():
    """A loopback TCP port nothing listens on (connections are refused)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def tern(tern_module_instance):
    t = tern_module_instance(start=False, extra_config=[
        "relay closed {", "\thost 127.0.0.1",
        f"\tport {closed_tcp_port()}", "\ttls none", "}",
        "route everything {", "\trecipient_domains *", "\tvia closed",
        "}"])
    r = run_tern("user", "add", ALICE, "--password-stdin", conf=t.conf,
                 input=PW + "\n")
    assert r.returncode == 0, r.stderr
    t.start()
    return t


def submit(t, marker):
    """Submit a message from alice to REMOTE; returns its queue id."""
    s = smtplib.SMTP("127.0.0.1", t.port("submission"), timeout=15)
    try:
        s.ehlo("client.example")
        s.starttls(context=client_tls_context())
        s.ehlo("client.example")
        s.login(ALICE, PW)
        code, _ = s.mail(ALICE)
        assert code == 250
        code, _ = s.rcpt(REMOTE)
        assert code == 250
        code, msg = s.data(f"From: {ALICE}\r\nTo: {REMOTE}\r\n"
                           f"Subject: {marker}\r\n\r\nbody {marker}\r\n")
        assert code == 250, msg
    finally:
        s.quit()
    m = re.search(rb"queued as ([0-9a-f]{16})", msg)
    assert m, msg
    return m.group(1).decode()


def queue(t, *args):
    return run_tern("queue", *args, conf=t.conf)


def listed(t):
    """{id: message} from `tern queue list --json`."""
    r = queue(t, "list", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"messages"}
    return {m["id"]: m for m in doc["messages"]}


def test_list_shows_submitted_message(tern):
    qid = submit(tern, "queue-list")
    msgs = listed(tern)
    assert qid in msgs, msgs
    m = msgs[qid]
    assert m["from"] == ALICE
    assert m["auth_user"] == ALICE
    assert m["client_ip"] == "127.0.0.1"
    assert m["held"] is False
    assert isinstance(m["size"], int) and m["size"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["arrival"])
    assert len(m["recipients"]) == 1
    r = m["recipients"][0]
    assert r["address"] == REMOTE
    assert r["local"] is False
    assert r["state"] == "pending"
    assert isinstance(r["attempts"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["next_try"])
    assert m["next_try"] == r["next_try"]
    for key in ("diagnostic", "remote_mta", "last_try"):
        assert key in r

    # The text listing and show say the same.
    text = queue(tern, "list")
    assert text.returncode == 0, text.stderr
    assert re.search(rf"^{qid} .*<{re.escape(ALICE)}>", text.stdout, re.M)
    assert f"<{REMOTE}>" in text.stdout
    assert re.search(r"^\d+ messages?, \d+ recipients? pending$",
                     text.stdout, re.M)
    r = queue(tern, "show", qid, "--json")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["id"] == qid and shown["from"] == ALICE
    r = queue(tern, "show", qid)
    assert r.returncode == 0, r.stderr
    assert f"id: {qid}\n" in r.stdout
    assert f"recipient: <{REMOTE}>" in r.stdout


def test_hold_release_retry_delete(tern):
    qid = submit(tern, "queue-hold")
    spool_file = tern.data / "queue" / qid
    assert spool_file.exists()

    r = queue(tern, "hold", qid)
    assert r.returncode == 0, r.stderr
    msgs = listed(tern)
    assert msgs[qid]["held"] is True
    assert re.search(rf"^{qid} .*HELD$", queue(tern, "list").stdout, re.M)
    # A held message is not retried; saying so is not an error.
    r = queue(tern, "retry", qid)
    assert r.returncode == 0, r.stderr
    assert "held" in r.stderr
    assert listed(tern)[qid]["held"] is True

    r = queue(tern, "release", qid)
    assert r.returncode == 0, r.stderr
    assert listed(tern)[qid]["held"] is False

    # retry: the running queue tries again within a second or so.
    wait_until(lambda: listed(tern)[qid]["recipients"][0]["attempts"] >= 1,
               10, what="the first attempt")
    before = listed(tern)[qid]["recipients"][0]["attempts"]
    r = queue(tern, "retry", qid)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: listed(tern)[qid]["recipients"][0]["attempts"]
               > before, 10, what="the retry")
    rcpt = listed(tern)[qid]["recipients"][0]
    assert rcpt["state"] == "pending"
    assert rcpt["last_try"] is not None
    assert rcpt["diagnostic"], rcpt

    r = queue(tern, "delete", qid)
    assert r.returncode == 0, r.stderr
    assert qid not in listed(tern)
    wait_until(lambda: not spool_file.exists(), 5,
               what=f"{spool_file} to be removed")
    r = queue(tern, "delete", qid)
    assert r.returncode == EX_UNAVAILABLE
    assert "no message" in r.stderr


def test_delete_while_held(tern):
    qid = submit(tern, "queue-delete")
    assert queue(tern, "hold", qid).returncode == 0
    r = queue(tern, "delete", qid)
    assert r.returncode == 0, r.stderr
    assert qid not in listed(tern)
    assert not (tern.data / "queue" / qid).exists()
    # The instance keeps running and takes mail.
    assert submit(tern, "queue-after-delete")


def test_unknown_and_malformed_ids(tern):
    unknown = "0123456789abcdef"
    assert unknown not in listed(tern)
    for sub in ("show", "retry", "hold", "release", "delete"):
        r = queue(tern, sub, unknown)
        assert r.returncode == EX_UNAVAILABLE, (sub, r.stderr)
        assert r.stderr.count("\n") == 1, r.stderr
    for bad in ("0123456789ABCDEF", "0123", "0123456789abcdef0",
                "../queue.db", "0123456789abcdeg"):
        r = queue(tern, "show", bad)
        assert r.returncode == EX_DATAERR, (bad, r.stderr)
        assert r.stderr.count("\n") == 1, r.stderr


@pytest.mark.parametrize("args", [
    [], ["frob"], ["show"], ["list", "extra"], ["list", "--bogus"],
    ["hold", "--json", "0123456789abcdef"],
    ["delete", "0123456789abcdef", "0123456789abcdef"],
])
def test_usage_errors(tern, args):
    r = queue(tern, *args)
    assert r.returncode == EX_USAGE, r.stderr
