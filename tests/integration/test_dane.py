"""DANE for SMTP (RFC 7672) end to end, all on loopback: a DNSSEC-signed
zone dane.example served by a real unbound (auth-zone, validated), the
sender tern validating it with the zone's DS as its trust anchor, and a
second tern instance as the remote MX on every MX name, with a
certificate from a test CA. TLSA records decide per MX host: a match is
delivered and logged as DANE-verified, a mismatch is deferred and never
sent in cleartext, no TLSA is plain opportunistic TLS, a bogus or failed
TLSA lookup defers, an insecure MX gets no DANE."""

import base64
import hashlib
import os
import shutil
import smtplib
import ssl
import subprocess
import tempfile

import pytest

from conftest import (DOMAIN, SignedZoneServer, client_tls_context, run_tern,
                      wait_until)
from test_smtp_out import Sink, maildir_messages, wait_message

ALICE = f"alice@{DOMAIN}"
PW = "dane password"
ZONE = "dane.example"
BOB = f"bob@{ZONE}"
# Recipient domains; all of them land in bob@dane.example at the remote
# (aliases), each message told apart by its subject.
ALIASED = ("bad.dane.example", "plain.dane.example", "ta.dane.example",
           "bogus.dane.example", "pkix.dane.example", "backup.dane.example",
           "tafail.dane.example", "insecure.example", "notls.dane.example")
WRONG = "ab" * 32  # a SHA2-256 that matches nothing


def openssl(*args, **kw):
    return subprocess.run(["openssl", *args], capture_output=True,
                          timeout=30, check=True, **kw)


def make_ca_and_leaf(d, names):
    """A test CA and a leaf for names (P-256) signed by it, in d."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=DANE test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-days", "2", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={names[0]}",
            "-keyout", f"{d}/leaf.key", "-out", f"{d}/leaf.csr")
    with open(f"{d}/ext", "w") as f:
        f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) +
                "\n")
    openssl("x509", "-req", "-in", f"{d}/leaf.csr", "-CA", f"{d}/ca.crt",
            "-CAkey", f"{d}/ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", f"{d}/ext", "-out", f"{d}/leaf.crt")


def spki_sha256(cert_path):
    """SHA2-256 of the certificate's SubjectPublicKeyInfo (selector 1)."""
    pem = openssl("x509", "-in", cert_path, "-noout", "-pubkey").stdout
    der = base64.b64decode(b"".join(
        line for line in pem.splitlines() if not line.startswith(b"-----")))
    return hashlib.sha256(der).hexdigest()


def cert_sha256(cert_path):
    """SHA2-256 of the whole certificate (selector 0)."""
    with open(cert_path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def zone_records(port, leaf, ca):
    """The zone: MX names all on 127.0.0.1 (the remote), with TLSA records
    at _PORT._tcp.<mx> as each case wants."""
    t = f"_{port}._tcp"
    ee = f"3 1 1 {spki_sha256(leaf)}"
    return [
        # (a) DANE-EE that matches
        "@ MX 10 mx", "mx A 127.0.0.1", f"{t}.mx TLSA {ee}",
        # (b) a TLSA that matches nothing
        "bad MX 10 mx2", "mx2 A 127.0.0.1", f"{t}.mx2 TLSA 3 1 1 {WRONG}",
        # (c) signed, no TLSA
        "plain MX 10 mx3", "mx3 A 127.0.0.1",
        # (d) DANE-TA: the CA, and the MX name in the leaf
        "ta MX 10 mxta", "mxta A 127.0.0.1",
        f"{t}.mxta TLSA 2 0 1 {cert_sha256(ca)}",
        # DANE-TA, but the MX name is not in the leaf
        "tafail MX 10 mxtafail", "mxtafail A 127.0.0.1",
        f"{t}.mxtafail TLSA 2 0 1 {cert_sha256(ca)}",
        # a TLSA that does not validate (altered after signing)
        "bogus MX 10 mx4", "mx4 A 127.0.0.1", f"{t}.mx4 TLSA {ee}",
        # only a PKIX-EE record: unusable for SMTP, TLS still required
        "pkix MX 10 mx5", "mx5 A 127.0.0.1", f"{t}.mx5 TLSA 1 1 1 {WRONG}",
        # the best MX fails DANE, the next one passes
        "backup MX 10 mx2", "backup MX 20 mx",
        # DANE-EE, but the server there (smtp-sink) has no TLS
        "notls MX 10 mx6", "mx6 A 127.0.0.6", f"{t}.mx6 TLSA {ee}",
    ]


@pytest.fixture(scope="module")
def remote(tern_module_instance):
    """The remote MX (a tern) for every domain here, with a leaf from the
    test CA for mx.dane.example and mxta.dane.example, sent with the CA."""
    t = tern_module_instance(
        start=False, quickstart_args=["--domain", ZONE,
                                      "--hostname", f"mx.{ZONE}"])
    tls = t.data / "tls"
    d = tempfile.mkdtemp(prefix="tern-dane-ca-")
    make_ca_and_leaf(d, [f"mx.{ZONE}", f"mxta.{ZONE}"])
    with open(f"{d}/leaf.crt") as a, open(f"{d}/ca.crt") as b:
        (tls / f"mx.{ZONE}.crt").write_text(a.read() + b.read())
    with open(f"{d}/leaf.key") as a:
        (tls / f"mx.{ZONE}.key").write_text(a.read())
    os.chmod(tls / f"mx.{ZONE}.key", 0o600)
    t.leaf = f"{d}/leaf.crt"
    t.ca = f"{d}/ca.crt"
    r = run_tern("user", "add", BOB, "--password-stdin", conf=t.conf,
                 input="bob pw\n")
    assert r.returncode == 0, r.stderr
    for dom in ALIASED:
        r = run_tern("domain", "add", dom, conf=t.conf)
        assert r.returncode == 0, r.stderr
        r = run_tern("alias", "add", f"bob@{dom}", BOB, conf=t.conf)
        assert r.returncode == 0, r.stderr
    yield t
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def zone(remote):
    """The signed zone, made once the remote's SMTP port is known; the
    remote starts with it as its resolver."""
    z = SignedZoneServer(
        ZONE, zone_records(remote.port("smtp"), remote.leaf, remote.ca),
        local_data=[f"insecure.example. MX 10 mx2.{ZONE}."],
        bogus=[f"_{remote.port('smtp')}._tcp.mx4.{ZONE}."])
    with open(remote.conf, "a") as f:
        f.write(f"\nresolver {z.address}\n")
    remote.start()
    yield z
    z.close()


def sender_config(zone_server, remote):
    return [f"resolver {zone_server.address}",
            f"dns_trust_anchor {zone_server.trust_anchor}",
            f"outbound_mx_port {remote.port('smtp')}",
            "outbound_ipv6 no",
            "outbound_connect_timeout 2s",
            "queue_retry_first 1s",
            "queue_retry_max 2s"]


def add_alice(t):
    r = run_tern("user", "add", ALICE, "--password-stdin", conf=t.conf,
                 input=PW + "\n")
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def sender(tern_module_instance, zone, remote):
    t = tern_module_instance(start=False,
                             extra_config=sender_config(zone, remote))
    add_alice(t)
    t.start()
    return t


def submit(t, rcpt, subject):
    msg = (f"From: {ALICE}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\n"
           f"DANE test message.\r\n")
    with smtplib.SMTP("127.0.0.1", t.port("submission"), timeout=30) as s:
        s.starttls(context=client_tls_context())
        s.login(ALICE, PW)
        s.sendmail(ALICE, [rcpt], msg.encode())


def received(remote, subject):
    return [m for m in maildir_messages(remote, ZONE, "bob")
            if subject in str(m.get("Subject", ""))]


def queued(t, rcpt):
    r = run_tern("queue", "list", "--json", conf=t.conf)
    assert r.returncode == 0, r.stderr
    return rcpt in r.stdout


def assert_never_sent(sender, remote, rcpt, subject, mark, rmark):
    """Deferred more than once (retried), still queued, and the remote got
    no transaction for it: not over TLS, not in cleartext."""
    wait_until(lambda: sender.log_since(mark).count(
        f"event=deferred to=<{rcpt}>") >= 2, 20, interval=0.2,
        what=f"{rcpt} deferred twice")
    assert "retry=plaintext" not in sender.log_since(mark)
    assert received(remote, subject) == []
    assert rcpt not in remote.log_since(rmark)
    assert queued(sender, rcpt)


def test_dane_ee_match_is_delivered_and_logged(sender, remote):
    mark = sender.log_mark()
    submit(sender, BOB, "dane-ee match")
    (m,) = wait_message(remote, ZONE, "bob", "dane-ee match")
    assert any("TLS" in r for r in m.get_all("Received"))
    port = remote.port("smtp")
    sender.wait_log(rf"event=dane-verified to=mx\.dane\.example"
                    rf"\[127\.0\.0\.1\]:{port} "
                    rf'matched="DANE-EE\(3\) SPKI\(1\) SHA2-256\(1\) '
                    rf'depth 0"', since=mark)
    sender.wait_log(rf"event=delivered to=<{BOB}> relay=mx\.dane\.example"
                    rf' .* tls="TLSv1\.\d \S+ dane"', since=mark)


def test_tlsa_mismatch_defers_and_sends_nothing(sender, remote):
    rcpt = "bob@bad.dane.example"
    mark, rmark = sender.log_mark(), remote.log_mark()
    submit(sender, rcpt, "tlsa mismatch")
    sender.wait_log(r"event=deferred to=<bob@bad\.dane\.example> "
                    r"relay=none status=4\.7\.5 reason=.DANE: certificate "
                    r"of mx2\.dane\.example\[127\.0\.0\.1\]:\d+ does not "
                    r"match its TLSA records", timeout=20, since=mark)
    assert_never_sent(sender, remote, rcpt, "tlsa mismatch", mark, rmark)


def test_signed_zone_without_tlsa_is_opportunistic(sender, remote):
    mark = sender.log_mark()
    submit(sender, "bob@plain.dane.example", "no tlsa")
    (m,) = wait_message(remote, ZONE, "bob", "no tlsa")
    assert any("TLS" in r for r in m.get_all("Received"))
    sender.wait_log(r"event=delivered to=<bob@plain\.dane\.example> "
                    r"relay=mx3\.dane\.example", since=mark)
    assert "event=dane-verified to=mx3" not in sender.log_since(mark)


def test_dane_ta_checks_the_chain_and_the_mx_name(sender, remote):
    mark, rmark = sender.log_mark(), remote.log_mark()
    submit(sender, "bob@ta.dane.example", "dane-ta match")
    wait_message(remote, ZONE, "bob", "dane-ta match")
    sender.wait_log(r"event=dane-verified to=mxta\.dane\.example\[[^]]+\]"
                    r':\d+ matched="DANE-TA\(2\) Cert\(0\) SHA2-256\(1\) '
                    r'depth 1"', since=mark)
    # The same CA, but the MX host's name is not in the certificate.
    rcpt = "bob@tafail.dane.example"
    submit(sender, rcpt, "dane-ta wrong name")
    sender.wait_log(r"event=deferred to=<bob@tafail\.dane\.example> .*"
                    r"status=4\.7\.5 reason=.DANE: certificate of "
                    r"mxtafail\.dane\.example.*[Hh]ostname mismatch",
                    timeout=20, since=mark)
    assert_never_sent(sender, remote, rcpt, "dane-ta wrong name", mark,
                      rmark)


def test_bogus_tlsa_defers(sender, remote):
    rcpt = "bob@bogus.dane.example"
    mark, rmark = sender.log_mark(), remote.log_mark()
    submit(sender, rcpt, "bogus tlsa")
    sender.wait_log(rf"event=deferred to=<bob@bogus\.dane\.example> "
                    rf"relay=none status=4\.7\.5 reason=.DANE: TLSA lookup "
                    rf"for _{remote.port('smtp')}\._tcp\.mx4\.dane\.example "
                    rf"failed", timeout=20, since=mark)
    assert_never_sent(sender, remote, rcpt, "bogus tlsa", mark, rmark)


def test_next_mx_after_a_dane_failure(sender, remote):
    mark = sender.log_mark()
    submit(sender, "bob@backup.dane.example", "second mx passes dane")
    wait_message(remote, ZONE, "bob", "second mx passes dane")
    log = sender.log_since(mark)
    assert "event=session-failed to=mx2.dane.example" in log
    assert "retry=plaintext" not in log
    sender.wait_log(r"event=delivered to=<bob@backup\.dane\.example> "
                    r"relay=mx\.dane\.example", since=mark)


def test_dane_host_without_tls_gets_nothing(sender, remote):
    """The host a TLSA record covers speaks no TLS: the mail waits; it is
    never sent to it in cleartext."""
    sink = Sink("127.0.0.6", remote.port("smtp"))
    try:
        mark = sender.log_mark()
        submit(sender, "bob@notls.dane.example", "dane without tls")
        sender.wait_log(r"event=deferred to=<bob@notls\.dane\.example> "
                        r"relay=none status=4\.7\.5 reason=.DANE: "
                        r"mx6\.dane\.example\[127\.0\.0\.6\]:\d+ did not "
                        r"start TLS", timeout=20, since=mark)
        wait_until(lambda: sender.log_since(mark).count(
            "event=deferred to=<bob@notls.dane.example>") >= 2, 20,
            interval=0.2, what="a retry")
        assert "retry=plaintext" not in sender.log_since(mark)
        assert sink.messages() == []
        assert queued(sender, "bob@notls.dane.example")
    finally:
        sink.close()


def test_unusable_tlsa_still_requires_tls(sender, remote):
    """Only a PKIX-EE record: no authentication for SMTP (RFC 7672
    3.1.3), but TLS stays mandatory; the remote offers it, so the mail
    goes, encrypted."""
    mark = sender.log_mark()
    submit(sender, "bob@pkix.dane.example", "pkix only")
    (m,) = wait_message(remote, ZONE, "bob", "pkix only")
    assert any("TLS" in r for r in m.get_all("Received"))
    sender.wait_log(r"event=dane-unusable host=mx5\.dane\.example",
                    since=mark)


def test_insecure_mx_gets_no_dane(sender, remote):
    """insecure.example's MX answer is not signed: the TLSA records of its
    MX host (mx2, which match nothing) are not even looked at."""
    mark = sender.log_mark()
    submit(sender, "bob@insecure.example", "insecure mx")
    wait_message(remote, ZONE, "bob", "insecure mx")
    m = sender.wait_log(r"id=(\w+) event=delivered to=<bob@insecure\.example> "
                        r"relay=mx2\.dane\.example", since=mark)
    mine = [line for line in sender.log_since(mark).splitlines()
            if f"id={m.group(1)} " in line]
    assert mine and not [line for line in mine if "event=dane" in line
                         or "DANE:" in line], mine


def test_no_trust_anchor_no_dane(tern_instance, zone, remote):
    """Without dns_trust_anchor nothing validates: the mismatching TLSA of
    mx2 is ignored and delivery is opportunistic."""
    cfg = [c for c in sender_config(zone, remote)
           if not c.startswith("dns_trust_anchor")]
    t = tern_instance(start=False, extra_config=cfg)
    add_alice(t)
    t.start()
    submit(t, "bob@bad.dane.example", "no anchor")
    wait_message(remote, ZONE, "bob", "no anchor")
    assert "event=dane" not in t.log()


def test_tern_validates_itself(tern_instance, remote):
    """A resolver that does not validate passes the altered TLSA record
    along; tern's own validation (the trust anchor) finds it bogus and
    defers, and still verifies the good one."""
    port = remote.port("smtp")
    z = SignedZoneServer(ZONE, zone_records(port, remote.leaf, remote.ca),
                         bogus=[f"_{port}._tcp.mx4.{ZONE}."],
                         validate=False)
    try:
        t = tern_instance(start=False, extra_config=sender_config(z, remote))
        add_alice(t)
        t.start()
        mark = t.log_mark()
        submit(t, "bob@bogus.dane.example", "bogus, tern validating")
        t.wait_log(r"event=deferred to=<bob@bogus\.dane\.example> "
                   r"relay=none status=4\.7\.5 reason=.DANE: TLSA lookup",
                   timeout=20, since=mark)
        submit(t, BOB, "verified, tern validating")
        wait_message(remote, ZONE, "bob", "verified, tern validating")
        t.wait_log(r"event=dane-verified to=mx\.dane\.example", since=mark)
        assert received(remote, "bogus, tern validating") == []
    finally:
        z.close()
