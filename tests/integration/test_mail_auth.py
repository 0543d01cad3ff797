"""Inbound mail authentication end to end: a real unbound on loopback
serves SPF and DKIM key records, mail signed by dkimpy arrives on the MX
listener, and the delivered message carries tern's Authentication-Results
and Received-SPF fields."""

import email
import imaplib
import re
import smtplib

import dkim
import pytest

from conftest import (DOMAIN, HOSTNAME, as_sent, client_tls_context,
                      dkim_records, dkim_rsa_key, dkim_signatures_verify,
                      run_tern, txt_strings, UnboundServer, wait_until)

ALICE = f"alice@{DOMAIN}"
PW = "mail auth password"


@pytest.fixture(scope="module")
def keys():
    return dkim_rsa_key()


@pytest.fixture(scope="module")
def dns_server(keys):
    """unbound answering for the test domains only, on a free port."""
    _, pub = keys
    records = [
        'pass.example. TXT "v=spf1 ip4:127.0.0.0/8 -all"',
        'fail.example. TXT "v=spf1 ip4:192.0.2.1 -all"',
        'soft.example. TXT "v=spf1 ~all"',
        '_dmarc.pass.example. TXT "v=DMARC1; p=reject"',
        'reject.example. TXT "v=spf1 ip4:192.0.2.1 -all"',
        '_dmarc.reject.example. TXT "v=DMARC1; p=reject"',
        'quar.example. TXT "v=spf1 ip4:192.0.2.1 -all"',
        '_dmarc.quar.example. TXT "v=DMARC1; p=quarantine"',
        f"sel._domainkey.pass.example. TXT {txt_strings('v=DKIM1; k=rsa; p=' + pub)}",
        f"arc._domainkey.lists.example. TXT {txt_strings('v=DKIM1; k=rsa; p=' + pub)}",
        f"arc._domainkey.other.example. TXT {txt_strings('v=DKIM1; k=rsa; p=' + pub)}",
        'lists.example. TXT "v=spf1 ip4:127.0.0.0/8 -all"',
        'other.example. TXT "v=spf1 ip4:127.0.0.0/8 -all"',
    ]
    dns = UnboundServer(records, probe=("pass.example", "TXT"))
    yield dns.address
    dns.close()


@pytest.fixture(scope="module")
def tern(tern_module_instance, dns_server):
    t = tern_module_instance(start=False,
                             extra_config=[f"resolver {dns_server}",
                                           "arc_trusted_sealers "
                                           "lists.example"])
    r = run_tern("user", "add", ALICE, "--password-stdin", conf=t.conf,
                 input=PW + "\n")
    assert r.returncode == 0, r.stderr
    t.start()
    return t


def send(t, mail_from, msg):
    with smtplib.SMTP("127.0.0.1", t.port("smtp"), timeout=30) as s:
        s.ehlo("client.pass.example")
        s.sendmail(mail_from, [ALICE], msg)


def fetch(t, subject, mailbox="INBOX"):
    m = imaplib.IMAP4_SSL("127.0.0.1", t.port("imaps"),
                          ssl_context=client_tls_context(), timeout=10)
    m.login(ALICE, PW)
    found = []

    def find():
        m.select(mailbox)
        typ, data = m.search(None, "SUBJECT", f'"{subject}"')
        if data[0]:
            found.append(data[0].split()[-1])
            return True
        return False
    wait_until(find, 15, what=f"message {subject}")
    typ, data = m.fetch(found[0], "(BODY.PEEK[])")
    m.logout()
    return data[0][1]


def message(subject, sender):
    return (f"From: {sender}\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            f"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{subject}@pass.example>\r\n\r\n"
            f"Hello from {sender}.\r\nSecond line.\r\n").encode()


def signed(subject, sender, keys):
    pem, _ = keys
    msg = message(subject, sender)
    sig = dkim.sign(msg, b"sel", b"pass.example", pem,
                    include_headers=[b"from", b"to", b"subject", b"date"])
    return sig + msg


def auth_results(raw):
    """Our Authentication-Results field (exactly one claims our name)."""
    msg = email.message_from_bytes(raw)
    ar = [re.sub(r"\s+", " ", v)
          for v in msg.get_all("Authentication-Results") or []]
    ours = [v for v in ar if v.startswith(HOSTNAME + ";")]
    assert len(ours) == 1, ar
    return ours[0]


def test_spf_pass_and_dkim_pass(tern, keys):
    send(tern, "sender@pass.example", signed("auth-1", "sender@pass.example", keys))
    raw = fetch(tern, "auth-1")
    ar = auth_results(raw)
    assert ar.startswith(HOSTNAME + ";"), ar
    assert "spf=pass smtp.mailfrom=sender@pass.example" in ar, ar
    assert "dkim=pass header.d=pass.example" in ar and "header.s=sel" in ar, ar
    assert "dmarc=pass (p=reject dis=none) header.from=pass.example" in ar, ar
    spf = email.message_from_bytes(raw)["Received-SPF"]
    assert spf is not None and spf.startswith("pass"), spf
    # The fields come after Return-Path and Delivered-To, before Received.
    order = [line.split(b":")[0] for line in raw.split(b"\r\n")[:6]]
    assert order[:3] == [b"Return-Path", b"Delivered-To",
                         b"Authentication-Results"], order
    assert ("event=mail-auth spf=pass dkim=pass dmarc=pass arc=none "
            "action=accept" in tern.log())


def test_tampered_body_fails_dkim(tern, keys):
    msg = signed("auth-2", "sender@pass.example", keys)
    msg = msg.replace(b"Second line.", b"Second line!")
    send(tern, "sender@pass.example", msg)
    ar = auth_results(fetch(tern, "auth-2"))
    assert "dkim=fail" in ar and "header.d=pass.example" in ar, ar


def test_spf_fail_softfail_none(tern):
    for sender, want in (("x@fail.example", "spf=fail"),
                         ("x@soft.example", "spf=softfail"),
                         ("x@nothing.example", "spf=none")):
        subject = "auth-" + sender.split("@")[1]
        send(tern, sender, message(subject, sender))
        ar = auth_results(fetch(tern, subject))
        assert want in ar and "dkim=none" in ar, ar


def test_dmarc_reject_is_refused_at_end_of_data(tern):
    msg = message("auth-reject", "boss@reject.example")
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(tern, "boss@reject.example", msg)
    assert e.value.smtp_code == 550
    assert b"5.7.1" in e.value.smtp_error
    assert b"DMARC policy of reject.example" in e.value.smtp_error
    assert "dmarc=fail arc=none action=reject" in tern.log()


def test_dmarc_quarantine_goes_to_junk(tern):
    send(tern, "boss@quar.example", message("auth-quar", "boss@quar.example"))
    ar = auth_results(fetch(tern, "auth-quar", mailbox="Junk"))
    assert "dmarc=fail (p=quarantine dis=quarantine)" in ar, ar
    assert "mailbox=Junk" in tern.log()


def forwarded(subject, sealer, keys):
    """A message from reject.example as a mailing list forwards it: the
    list checked it (dmarc=pass), changed the subject, and sealed it."""
    pem, _ = keys
    msg = (f"Authentication-Results: {sealer}; spf=pass "
           f"smtp.mailfrom=boss@reject.example; dmarc=pass "
           f"header.from=reject.example\r\n").encode()
    msg += message(f"[list] {subject}", "boss@reject.example")
    seal = dkim.arc_sign(msg, b"arc", sealer.encode(), pem,
                         sealer.encode())
    return b"".join(seal) + msg


def test_trusted_arc_sealer_overrides_dmarc_reject(tern, keys):
    send(tern, "bounce@lists.example",
         forwarded("auth-arc", "lists.example", keys))
    ar = auth_results(fetch(tern, "auth-arc"))
    assert "dmarc=fail" in ar and "overridden" in ar, ar
    assert "arc=pass" in ar, ar
    assert "arc=pass action=accept" in tern.log()


def test_untrusted_arc_sealer_changes_nothing(tern, keys):
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(tern, "bounce@other.example",
             forwarded("auth-arc2", "other.example", keys))
    assert e.value.smtp_code == 550


def test_submission_is_signed_not_checked(tern):
    records = dkim_records(tern)
    assert len(records) == 2, records
    with smtplib.SMTP("127.0.0.1", tern.port("submission"),
                      timeout=30) as s:
        s.starttls(context=client_tls_context())
        s.login(ALICE, PW)
        s.sendmail(ALICE, [ALICE], message("auth-sub", ALICE))
    raw = fetch(tern, "auth-sub")
    assert b"Authentication-Results" not in raw
    # What a receiver sees: the message as queue would hand it on, i.e.
    # without the fields local delivery adds in front.
    sent = as_sent(raw)
    d = dkim.DKIM(sent)
    sigs = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
    algs = sorted(re.search(rb"a=([a-z0-9-]+)", v).group(1) for v in sigs)
    assert algs == [b"ed25519-sha256", b"rsa-sha256"], sigs
    assert dkim_signatures_verify(sent, records) == ["example.test"] * 2
    assert "event=dkim-signed domain=example.test signatures=2" in tern.log()
