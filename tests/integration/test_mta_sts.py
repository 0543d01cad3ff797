"""MTA-STS (RFC 8461) end to end on loopback: unbound serves the MX, A and
_mta-sts TXT records; a small HTTPS server (Python's ssl) serves each
domain's policy with a certificate from a test CA; the remote MX is a
second tern whose certificate the same CA signed for mx.sts.example.
The sender trusts that CA through mta_sts_ca_file."""

import datetime
import glob
import http.server
import os
import shutil
import sqlite3
import ssl
import tempfile
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import UnboundServer, run_tern, wait_until
from test_smtp_out import ALICE, PW, add_user, maildir_messages, submit

POLICIES = {
    # enforce, and the MX matches and has a valid certificate
    "sts.example": "version: STSv1\r\nmode: enforce\r\n"
                   "mx: mx.sts.example\r\nmax_age: 86400\r\n",
    # enforce, the MX matches the pattern but its certificate names
    # another host
    "badcert.example": "version: STSv1\r\nmode: enforce\r\n"
                       "mx: *.badcert.example\r\nmax_age: 86400\r\n",
    # enforce, and no MX matches the policy
    "nomatch.example": "version: STSv1\r\nmode: enforce\r\n"
                       "mx: mail.elsewhere.example\r\nmax_age: 86400\r\n",
    # testing: failures are only logged
    "testing.example": "version: STSv1\r\nmode: testing\r\n"
                       "mx: mail.elsewhere.example\r\nmax_age: 86400\r\n",
}


def make_ca_and_cert(d, names):
    def key():
        return ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            "tern test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name)
          .issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": os.path.join(d, "ca.pem")}
    with open(out["ca"], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    for label, dns_names in names.items():
        k = key()
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(
                    NameOID.COMMON_NAME, dns_names[0])]))
                .issuer_name(ca_name).public_key(k.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName(n) for n in dns_names]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        out[label] = (os.path.join(d, label + ".crt"),
                      os.path.join(d, label + ".key"))
        with open(out[label][0], "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(out[label][1], "wb") as f:
            f.write(k.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return out


class PolicyServer:
    """HTTPS on 127.0.0.1: /.well-known/mta-sts.txt by Host header."""

    def __init__(self, certs):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0]
                domain = host[len("mta-sts."):]
                body = POLICIES.get(domain)
                if self.path != "/.well-known/mta-sts.txt" or body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*certs["web"])
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket,
                                            server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="tern-sts-")
    os.chmod(d, 0o755)
    certs = make_ca_and_cert(d, {
        "web": ["mta-sts." + dom for dom in POLICIES],
        "mx": ["mx.sts.example"],
    })
    for path in glob.glob(os.path.join(d, "*")):
        os.chmod(path, 0o644)
    yield certs
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def web(pki):
    s = PolicyServer(pki)
    yield s
    s.close()


@pytest.fixture(scope="module")
def dns():
    records = []
    for dom in POLICIES:
        records += [f'_mta-sts.{dom}. TXT "v=STSv1; id=20261123"',
                    f"mta-sts.{dom}. A 127.0.0.1"]
    records += [
        "sts.example. MX 10 mx.sts.example.",
        "mx.sts.example. A 127.0.0.1",
        "badcert.example. MX 10 mx.badcert.example.",
        "mx.badcert.example. A 127.0.0.1",
        "nomatch.example. MX 10 mx.sts.example.",
        "testing.example. MX 10 mx.sts.example.",
    ]
    d = UnboundServer(records, probe=("sts.example", "MX"))
    yield d.address
    d.close()


@pytest.fixture(scope="module")
def remote(tern_module_instance, dns, pki):
    """The MX for all the test domains, with the CA-signed certificate
    for mx.sts.example."""
    t = tern_module_instance(
        start=False, extra_config=[f"resolver {dns}"],
        quickstart_args=["--domain", "sts.example",
                         "--hostname", "mx.sts.example"])
    for dom in ("badcert.example", "nomatch.example", "testing.example"):
        r = run_tern("domain", "add", dom, conf=t.conf)
        assert r.returncode == 0, r.stderr
    for dom in ("sts.example", "badcert.example", "nomatch.example",
                "testing.example"):
        add_user(t, f"bob@{dom}", "bob pw")
    crt, key = pki["mx"]
    tls = t.data / "tls"
    shutil.copy(crt, tls / "mx.sts.example.crt")
    shutil.copy(key, tls / "mx.sts.example.key")
    t.start()
    return t


@pytest.fixture(scope="module")
def sender(tern_module_instance, dns, remote, pki, web):
    t = tern_module_instance(
        start=False,
        extra_config=[f"resolver {dns}",
                      f"outbound_mx_port {remote.port('smtp')}",
                      "outbound_ipv6 no",
                      "queue_retry_first 1s",
                      "queue_retry_max 2s",
                      f"mta_sts_ca_file {pki['ca']}",
                      f"mta_sts_port {web.port}"])
    add_user(t, ALICE, PW)
    t.start()
    return t


def arrived(t, dom, subject):
    return any(subject in str(m.get("Subject", ""))
               for m in maildir_messages(t, dom, "bob"))


def test_enforced_policy_verified_delivery(sender, remote):
    submit(sender, ["bob@sts.example"], "sts enforced")
    wait_until(lambda: arrived(remote, "sts.example", "sts enforced"), 20,
               interval=0.2, what="delivery under MTA-STS")
    assert sender.wait_log(r"event=delivered to=<bob@sts\.example> "
                           r"relay=mx\.sts\.example .* "
                           r'tls="TLSv1\.\d \S+ mta-sts"', timeout=5)
    assert sender.wait_log(r"mta-sts=enforce", timeout=5)


def test_certificate_not_matching_the_mx_defers(sender, remote):
    mark = sender.log_mark()
    submit(sender, ["bob@badcert.example"], "sts bad cert")
    assert sender.wait_log(r"event=deferred to=<bob@badcert\.example> .*"
                           r"MTA-STS", timeout=20, since=mark)
    assert not arrived(remote, "badcert.example", "sts bad cert")
    r = run_tern("queue", "list", "--json", conf=sender.conf)
    assert "bob@badcert.example" in r.stdout


def test_no_matching_mx_defers(sender, remote):
    mark = sender.log_mark()
    submit(sender, ["bob@nomatch.example"], "sts no match")
    assert sender.wait_log(r"event=deferred to=<bob@nomatch\.example> .*"
                           r"MTA-STS", timeout=20, since=mark)
    assert not arrived(remote, "nomatch.example", "sts no match")


def tlsrpt_rows(t, domain):
    """The TLS-RPT data the queue recorded for domain: {(policy, result)}."""
    db = sqlite3.connect(f"file:{t.data / 'queue' / 'tlsrpt.db'}?mode=ro",
                         uri=True)
    try:
        return {(p, r): c for p, r, c in db.execute(
            "SELECT policy, result, sum(count) FROM sessions"
            " WHERE domain = ? GROUP BY policy, result", (domain,))}
    finally:
        db.close()


def test_tls_reporting_data_is_recorded(sender, remote):
    """RFC 8460: successes and failures per policy domain, by type."""
    wait_until(lambda: tlsrpt_rows(sender, "sts.example")
               .get(("sts", "success"), 0) >= 1, 20, interval=0.2,
               what="a recorded success for sts.example")
    submit(sender, ["bob@badcert.example"], "sts bad cert again")
    wait_until(lambda: tlsrpt_rows(sender, "badcert.example")
               .get(("sts", "certificate-host-mismatch"), 0) >= 1, 20,
               interval=0.2, what="a recorded host mismatch")
    assert ("sts", "success") not in tlsrpt_rows(sender, "badcert.example")


def test_testing_mode_delivers_anyway(sender, remote):
    submit(sender, ["bob@testing.example"], "sts testing")
    wait_until(lambda: arrived(remote, "testing.example", "sts testing"),
               20, interval=0.2, what="delivery under a testing policy")
    assert sender.wait_log(r"mta-sts=testing", timeout=5)
