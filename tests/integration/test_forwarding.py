"""Forwarding to external aliases, end to end on loopback: a message
signed by origin.example arrives at the forwarder (fwd.example) from the
only address origin.example's SPF allows; an alias there sends it on to
a second tern instance (dest.example). The forwarded copy leaves with an
SRS envelope sender (so SPF passes at dest) and an ARC set made with the
forwarder's key (which dkimpy and dest both validate); a bounce to the
SRS address goes back to the original sender; forged SRS addresses are
refused. unbound serves every record."""

import email
import glob
import os
import re
import shutil
import smtplib

import json

import dkim
import pytest

from conftest import (as_sent, client_tls_context, dkim_rsa_key, run_tern,
                      txt_strings, UnboundServer, wait_until)

ORIGIN_IP = "127.0.0.9"  # the only address origin.example's SPF allows
BOSS = "boss@origin.example"
ALIAS = "team@fwd.example"
CAROL = "carol@dest.example"
DAN = "dan@fwd.example"  # a local mailbox at the forwarder
PW = "forwarding password"
# What dest's own checks put on top of what the forwarder sent.
AUTH_FIELDS = (b"Authentication-Results", b"Received-SPF")


@pytest.fixture(scope="module")
def keys():
    return dkim_rsa_key()


@pytest.fixture(scope="module")
def dns(keys):
    _, pub = keys
    key = txt_strings("v=DKIM1; k=rsa; p=" + pub)
    records = [
        'origin.example. TXT "v=spf1 ip4:127.0.0.9 -all"',
        '_dmarc.origin.example. TXT "v=DMARC1; p=reject"',
        f"sel._domainkey.origin.example. TXT {key}",
        "origin.example. MX 10 mx.dest.example.",
        'fwd.example. TXT "v=spf1 ip4:127.0.0.1 -all"',
        f"arc._domainkey.fwd.example. TXT {key}",
        "dest.example. MX 10 mx.dest.example.",
        "mx.dest.example. A 127.0.0.1",
        # nothing listens there: mail for it stays queued
        "slow.example. MX 10 mx.slow.example.",
        "mx.slow.example. A 127.0.0.4",
    ]
    d = UnboundServer(records, probe=("dest.example", "MX"))
    yield d.address
    d.close()


def add_user(t, address):
    r = run_tern("user", "add", address, "--password-stdin", conf=t.conf,
                 input=PW + "\n")
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def dest(tern_module_instance, dns):
    """The destination: dest.example (the alias's target) and
    origin.example (where bounces go back to)."""
    t = tern_module_instance(
        start=False, extra_config=[f"resolver {dns}"],
        quickstart_args=["--domain", "dest.example",
                         "--hostname", "mail.dest.example"])
    r = run_tern("domain", "add", "origin.example", conf=t.conf)
    assert r.returncode == 0, r.stderr
    add_user(t, CAROL)
    add_user(t, BOSS)
    t.start()
    return t


@pytest.fixture(scope="module")
def fwd(tern_module_instance, dns, dest, keys):
    """The forwarder: team@fwd.example → carol@dest.example and dan here.
    Its RSA DKIM key is the test key under selector "arc" (published)."""
    pem, _ = keys
    t = tern_module_instance(
        start=False,
        extra_config=[f"resolver {dns}",
                      f"outbound_mx_port {dest.port('smtp')}",
                      "outbound_ipv6 no",
                      "queue_retry_first 1s"],
        quickstart_args=["--domain", "fwd.example",
                         "--hostname", "mail.fwd.example"])
    keydir = t.data / "dkim" / "fwd.example"
    # quickstart's RSA key (selector YYYYMMDDr) gives way to the test key
    (rsa_key,) = [p for p in keydir.glob("*.key") if p.stem.endswith("r")]
    arc_key = keydir / "arc.key"
    arc_key.write_bytes(pem)
    shutil.copystat(rsa_key, arc_key)
    os.chown(arc_key, rsa_key.stat().st_uid, rsa_key.stat().st_gid)
    rsa_key.unlink()
    add_user(t, DAN)
    r = run_tern("alias", "add", ALIAS, CAROL, DAN, conf=t.conf)
    assert r.returncode == 0, r.stderr
    r = run_tern("alias", "add", "later@fwd.example", "erin@slow.example",
                 conf=t.conf)
    assert r.returncode == 0, r.stderr
    t.start()
    return t


def maildir(t, domain, local):
    out = []
    base = t.data / "mail" / domain / local
    for path in sorted(glob.glob(str(base / "new" / "*")) +
                       glob.glob(str(base / "cur" / "*"))):
        with open(path, "rb") as f:
            out.append(f.read())
    return out


def wait_raw(t, domain, local, subject, timeout=20):
    found = []

    def arrived():
        found[:] = [m for m in maildir(t, domain, local)
                    if f"Subject: {subject}".encode() in m]
        return bool(found)
    wait_until(arrived, timeout, interval=0.2,
               what=f"{subject!r} in {local}@{domain}'s Maildir")
    return found[0]


def original(subject, keys, sender=BOSS):
    pem, _ = keys
    msg = (f"From: {sender}\r\nTo: {ALIAS}\r\nSubject: {subject}\r\n"
           f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
           f"Message-ID: <{subject}@origin.example>\r\n\r\n"
           f"A message for the team.\r\n").encode()
    sig = dkim.sign(msg, b"sel", b"origin.example", pem,
                    include_headers=[b"from", b"to", b"subject", b"date"])
    return sig + msg


def send_mx(t, mail_from, rcpts, msg, source=ORIGIN_IP):
    with smtplib.SMTP("127.0.0.1", t.port("smtp"), timeout=30,
                      source_address=(source, 0)) as s:
        s.ehlo("mx.origin.example")
        return s.sendmail(mail_from, rcpts, msg)


def fields(raw, name):
    msg = email.message_from_bytes(raw)
    return [re.sub(r"\s+", " ", v) for v in msg.get_all(name) or []]


def dnsfunc_for(keys):
    _, pub = keys
    value = ("v=DKIM1; k=rsa; p=" + pub).encode()

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        if name in ("arc._domainkey.fwd.example.",
                    "sel._domainkey.origin.example."):
            return value
        return b""
    return dnsfunc


def test_forwarded_copy_has_srs_sender_and_arc_set(fwd, dest, keys):
    mark = fwd.log_mark()
    send_mx(fwd, BOSS, [ALIAS], original("fwd-1", keys))
    raw = wait_raw(dest, "dest.example", "carol", "fwd-1")

    # SRS: the envelope sender is ours, and SPF passes at dest for it.
    (rp,) = fields(raw, "Return-Path")
    m = re.fullmatch(r"<SRS0=([a-z2-7]{6})=([a-z2-7]{2})=origin\.example="
                     r"boss@fwd\.example>", rp)
    assert m, rp
    ar = [v for v in fields(raw, "Authentication-Results")
          if v.startswith("mail.dest.example;")]
    assert len(ar) == 1, fields(raw, "Authentication-Results")
    assert re.search(r'spf=pass smtp\.mailfrom="?SRS0=[^ ;]*@fwd\.example',
                     ar[0]), ar
    # The origin's DKIM signature survived: DMARC passes on it.
    assert "dkim=pass" in ar[0] and "dmarc=pass" in ar[0], ar
    assert "arc=pass" in ar[0], ar

    # ARC: one set, i=1, sealed by fwd.example, carrying what the
    # forwarder saw (SPF pass for origin.example from 127.0.0.9).
    (seal,) = fields(raw, "ARC-Seal")
    assert "i=1" in seal and "d=fwd.example" in seal and "cv=none" in seal
    (aar,) = fields(raw, "ARC-Authentication-Results")
    assert aar.startswith("i=1; mail.fwd.example;"), aar
    assert "spf=pass smtp.mailfrom=boss@origin.example" in aar, aar
    assert "dmarc=pass" in aar, aar
    cv, results, why = dkim.arc_verify(as_sent(raw, also=AUTH_FIELDS),
                                       dnsfunc=dnsfunc_for(keys))
    assert cv == dkim.CV_Pass, (cv, results, why)
    assert fwd.wait_log(r"event=arc-sealed domain=fwd\.example "
                        r"selector=arc i=1", since=mark)

    # The local copy at the forwarder: original sender, no ARC set.
    local = wait_raw(fwd, "fwd.example", "dan", "fwd-1")
    assert fields(local, "Return-Path") == [f"<{BOSS}>"]
    assert fields(local, "ARC-Seal") == []


def test_bounce_to_the_srs_address_reaches_the_original_sender(fwd, dest,
                                                                keys):
    send_mx(fwd, BOSS, [ALIAS], original("fwd-2", keys))
    raw = wait_raw(dest, "dest.example", "carol", "fwd-2")
    srs = fields(raw, "Return-Path")[0].strip("<>")
    bounce = (f"From: MAILER-DAEMON@mail.dest.example\r\nTo: {srs}\r\n"
              f"Subject: bounce of fwd-2\r\n\r\nIt did not work.\r\n")
    # From dest's address, as a bounce would come (SPF: none for <>'s
    # HELO here; nothing refuses it).
    send_mx(fwd, "", [srs], bounce.encode(), source="127.0.0.1")
    back = wait_raw(dest, "origin.example", "boss", "bounce of fwd-2")
    assert fields(back, "Return-Path") == ["<>"]
    # The case of an SRS local part may change on the way: still ours.
    send_mx(fwd, "", [srs.upper().replace("@FWD.EXAMPLE", "@fwd.example")],
            bounce.replace("fwd-2", "fwd-2 upper").encode(),
            source="127.0.0.1")
    wait_raw(dest, "origin.example", "boss", "bounce of fwd-2 upper")


def test_forged_srs_addresses_are_refused(fwd, dest, keys):
    send_mx(fwd, BOSS, [ALIAS], original("fwd-3", keys))
    raw = wait_raw(dest, "dest.example", "carol", "fwd-3")
    srs = fields(raw, "Return-Path")[0].strip("<>")
    local, domain = srs.rsplit("@", 1)
    parts = local.split("=")
    forged = [
        # another victim with the same hash: the hash covers the address
        "=".join(parts[:4] + ["victim"]) + "@" + domain,
        "=".join(parts[:3] + ["elsewhere.example", parts[4]]) + "@" + domain,
        # a hash of our alphabet that we did not make
        "=".join(parts[:1] + ["aaaaaa" if parts[1] != "aaaaaa"
                              else "bbbbbb"] + parts[2:]) + "@" + domain,
        "SRS0=abc=zz=origin.example=boss@fwd.example",
    ]
    mark = fwd.log_mark()
    for rcpt in forged:
        with smtplib.SMTP("127.0.0.1", fwd.port("smtp"), timeout=30) as s:
            s.ehlo("mx.dest.example")
            s.mail("")
            code, _ = s.rcpt(rcpt)
            assert code == 550, (rcpt, code)
    assert fwd.wait_log(r"event=srs-refused .*reason=hash", since=mark)


def test_local_sender_is_not_rewritten_nor_sealed(fwd, dest):
    """A user of the forwarder writing to the alias: SPF already passes
    for fwd.example, so the sender stays; submission gets no ARC set."""
    msg = (f"From: {DAN}\r\nTo: {ALIAS}\r\nSubject: fwd-4\r\n\r\n"
           f"From inside.\r\n")
    with smtplib.SMTP("127.0.0.1", fwd.port("submission"),
                      timeout=30) as s:
        s.starttls(context=client_tls_context())
        s.login(DAN, PW)
        s.sendmail(DAN, [ALIAS], msg.encode())
    raw = wait_raw(dest, "dest.example", "carol", "fwd-4")
    assert fields(raw, "Return-Path") == [f"<{DAN}>"]
    assert fields(raw, "ARC-Seal") == []


def test_sender_too_long_for_srs_goes_as_it_is(fwd, dest, keys):
    """An SRS address whose local part would pass 64 octets could not come
    back through our own RCPT: the copy keeps its sender (logged)."""
    long_sender = "a-rather-long-mailbox-name-for-testing.srs@origin.example"
    mark = fwd.log_mark()
    # Signed by origin.example: DMARC still passes at dest through DKIM.
    send_mx(fwd, long_sender, [ALIAS],
            original("fwd-5", keys, sender=long_sender))
    raw = wait_raw(dest, "dest.example", "carol", "fwd-5")
    assert fields(raw, "Return-Path") == [f"<{long_sender}>"]
    assert fwd.wait_log(r"event=srs-failed sender=<a-rather-long[^>]*> "
                        r"reason=local-part-too-long", since=mark)


def test_queue_show_tells_the_srs_sender(fwd, keys):
    """A forwarded copy that waits in the queue: `tern queue show` says it
    is forwarded and from which SRS sender it goes."""
    mark = fwd.log_mark()
    msg = original("fwd-6", keys).replace(ALIAS.encode(),
                                          b"later@fwd.example")
    send_mx(fwd, BOSS, ["later@fwd.example"], msg)
    m = fwd.wait_log(r"event=accepted queue_id=(\w+)", since=mark)
    qid = m.group(1)
    fwd.wait_log(r"event=deferred to=<erin@slow\.example>", since=mark,
                 timeout=20)
    r = run_tern("queue", "show", qid, "--json", conf=fwd.conf)
    assert r.returncode == 0, r.stderr
    (rcpt,) = json.loads(r.stdout)["recipients"]
    assert rcpt["address"] == "erin@slow.example"
    assert rcpt["forwarded"] is True and rcpt["local"] is False
    assert re.fullmatch(r"SRS0=[a-z2-7]{6}=[a-z2-7]{2}=origin\.example="
                        r"boss@fwd\.example", rcpt["sender"]), rcpt
    r = run_tern("queue", "show", qid, conf=fwd.conf)
    assert f"sender: <{rcpt['sender']}>" in r.stdout, r.stdout
    assert "forwarded: yes" in r.stdout
    run_tern("queue", "delete", qid, conf=fwd.conf)
