"""DKIM interoperability: tern signs and dkimpy / OpenDKIM verify; dkimpy
and OpenDKIM sign and tern verifies. tern is driven through
tests/unit/dkim_driver ($TERN_BUILD_DIR, default build/ of this tree).

OpenDKIM's opendkim-testmsg only looks keys up through /etc/resolv.conf, so
its checks run in a private mount + network namespace (unshare, root only)
where a small DNS responder on 127.0.0.1:53 serves the key records and a
bind-mounted resolv.conf points at it; nothing outside the namespace is
touched. opendkim-testmsg signs only with rsa-sha1 (no option to change
it) and cannot sign with Ed25519 keys, so OpenDKIM-signed mail is checked
with the driver's -L (rsa-sha1 allowed) and tern-signed Ed25519 mail is
verified by OpenDKIM instead.

Run as: /usr/bin/python3 -m pytest tests/integration/test_dkim_interop.py"""

import base64
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

dkim = pytest.importorskip("dkim")

BUILD = Path(os.environ.get("TERN_BUILD_DIR")
             or Path(__file__).resolve().parents[2] / "build")
DRIVER = BUILD / "tests" / "unit" / "dkim_driver"
DOMAIN = "example.com"
NOW = 1700000000

CANONS = ["relaxed/relaxed", "simple/simple", "relaxed/simple",
          "simple/relaxed"]
ALGS = ["rsa-sha256", "ed25519-sha256"]

# Every message has a Date field: libopendkim refuses mail without one
# ("dkim_chunk(): Syntax error").
MESSAGES = {
    "plain": (
        b"From: Joe SixPack <joe@example.com>\r\n"
        b"To: Suzie Q <suzie@shopping.example.net>\r\n"
        b"Subject: Is dinner ready?\r\n"
        b"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
        b"Message-ID: <20030712040037.46341.5F8J@example.com>\r\n"
        b"\r\n"
        b"Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n"),
    "whitespace": (
        b"Received: from client.example.com by mx.example.net;\r\n"
        b"\tMon, 01 Jan 2024 00:00:00 +0000\r\n"
        b"From:   Joe <joe@example.com>  \r\n"
        b"To: a@example.net,\r\n   b@example.net\r\n"
        b"Subject: folded\r\n  subject\twith  tabs \r\n"
        b"Cc: c@example.net\r\n"
        b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"\r\n"
        b"  leading space\r\n"
        b"trailing space   \r\n"
        b"\ttab\t \tinside\r\n"
        b"caf\xc3\xa9 8bit\r\n"
        b"\r\n\r\n\r\n"),
    "empty-body": (
        b"From: joe@example.com\r\n"
        b"Subject: nothing\r\n"
        b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
        b"\r\n"),
}


# ---------------------------------------------------------------- keys

def _openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data,
                          capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Keys as quickstart writes them (PKCS#8 PEM: RSA 2048, Ed25519),
    their DNS records, and the forms dkimpy wants."""
    if not DRIVER.is_file():
        pytest.fail(f"{DRIVER} not built (set TERN_BUILD_DIR)",
                    pytrace=False)
    d = tmp_path_factory.mktemp("dkimkeys")
    rsa = d / "rsa.key"
    ed = d / "ed.key"
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
             "rsa_keygen_bits:2048", "-out", str(rsa))
    _openssl("genpkey", "-algorithm", "ed25519", "-out", str(ed))
    rsa_spki = _openssl("pkey", "-in", str(rsa), "-pubout", "-outform",
                        "DER")
    ed_spki = _openssl("pkey", "-in", str(ed), "-pubout", "-outform", "DER")
    ed_der = _openssl("pkey", "-in", str(ed), "-outform", "DER")
    records = {
        f"rsa._domainkey.{DOMAIN}":
            "v=DKIM1; k=rsa; p=" + base64.b64encode(rsa_spki).decode(),
        f"ed._domainkey.{DOMAIN}":
            "v=DKIM1; k=ed25519; p=" + base64.b64encode(ed_spki[-32:])
            .decode(),
    }
    zone = d / "zone.txt"
    zone.write_text("".join(f"{n} {v}\n" for n, v in records.items()))
    return {
        "dir": d,
        "file": {"rsa-sha256": rsa, "ed25519-sha256": ed},
        "selector": {"rsa-sha256": "rsa", "ed25519-sha256": "ed"},
        # dkimpy: PEM for RSA, the base64 seed for Ed25519
        "dkimpy": {"rsa-sha256": rsa.read_bytes(),
                   "ed25519-sha256": base64.b64encode(ed_der[-32:])},
        "records": records,
        "zone": zone,
    }


def _dnsfunc(records):
    def lookup(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return records.get(name.rstrip(".").lower(), "")
    return lookup


# ------------------------------------------------------------ the driver

def tern_sign(keys, alg, msg, *args):
    """Sign with the driver at NOW (a later -t in args wins)."""
    r = subprocess.run(
        [str(DRIVER), "sign", str(keys["file"][alg]), DOMAIN,
         keys["selector"][alg], "-a", alg, "-t", str(NOW), *args],
        input=msg, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    field = r.stdout
    assert field.startswith(b"DKIM-Signature: ") and field.endswith(b"\r\n")
    for line in field[:-2].split(b"\r\n"):
        assert len(line) <= 78, line
    return field + msg


def tern_verify(zone, msg, *args):
    r = subprocess.run([str(DRIVER), "verify", str(zone), "-n",
                        str(NOW + 60), *args],
                       input=msg, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode().splitlines()


def tamper(msg):
    """Change one body byte."""
    head, _, body = msg.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n" + (body.replace(b"e", b"E", 1) if body
                                 else b"x\r\n")


# ------------------------------------------------- tern signs, dkimpy checks

@pytest.mark.parametrize("name", sorted(MESSAGES))
@pytest.mark.parametrize("canon", CANONS)
@pytest.mark.parametrize("alg", ALGS)
def test_tern_signs_dkimpy_verifies(keys, alg, canon, name):
    signed = tern_sign(keys, alg, MESSAGES[name], "-c", canon)
    assert dkim.verify(signed, dnsfunc=_dnsfunc(keys["records"]),
                       minkey=1024)
    assert not dkim.verify(tamper(signed),
                           dnsfunc=_dnsfunc(keys["records"]))


@pytest.mark.parametrize("alg", ALGS)
def test_tern_signs_with_options_dkimpy_verifies(keys, alg):
    msg = MESSAGES["plain"]
    now = int(time.time())  # dkimpy checks x= against its own clock
    signed = tern_sign(keys, alg, msg, "-l", "-t", str(now), "-x",
                       str(now + 86400), "-i", "joe@example.com",
                       "-h", "From:To:Subject:Date:Message-ID:From")
    assert b"l=" in signed and b"x=" in signed
    assert dkim.verify(signed, dnsfunc=_dnsfunc(keys["records"]))
    # l=: text appended after the signed length still verifies, as the
    # RFC says; tern flags it (see test_dkimpy_signs_tern_verifies_l).
    assert dkim.verify(signed + b"appended\r\n",
                       dnsfunc=_dnsfunc(keys["records"]))


# ------------------------------------------------- dkimpy signs, tern checks

@pytest.mark.parametrize("name", sorted(MESSAGES))
@pytest.mark.parametrize("canon", CANONS)
@pytest.mark.parametrize("alg", ALGS)
def test_dkimpy_signs_tern_verifies(keys, alg, canon, name):
    msg = MESSAGES[name]
    hc, bc = (c.encode() for c in canon.split("/"))
    sig = dkim.sign(msg, keys["selector"][alg].encode(), DOMAIN.encode(),
                    keys["dkimpy"][alg], canonicalize=(hc, bc),
                    signature_algorithm=alg.encode())
    signed = sig + msg
    out = tern_verify(keys["zone"], signed)
    assert len(out) == 1 and out[0].startswith("dkim=pass "), out
    assert f"header.a={alg}" in out[0]
    assert f"header.s={keys['selector'][alg]}" in out[0]
    out = tern_verify(keys["zone"], tamper(signed))
    assert out[0].startswith("dkim=fail "), out


@pytest.mark.parametrize("alg", ALGS)
def test_dkimpy_signs_tern_verifies_l(keys, alg):
    msg = MESSAGES["plain"]
    sig = dkim.sign(msg, keys["selector"][alg].encode(), DOMAIN.encode(),
                    keys["dkimpy"][alg], length=True,
                    signature_algorithm=alg.encode())
    out = tern_verify(keys["zone"], sig + msg)
    assert out[0].startswith("dkim=pass header."), out
    out = tern_verify(keys["zone"], sig + msg + b"P.S. unsigned\r\n")
    assert out[0].startswith("dkim=pass (body partially signed)"), out


def test_dkimpy_two_signatures(keys):
    msg = MESSAGES["whitespace"]
    for alg in ALGS:
        msg = dkim.sign(msg, keys["selector"][alg].encode(),
                        DOMAIN.encode(), keys["dkimpy"][alg],
                        signature_algorithm=alg.encode()) + msg
    out = tern_verify(keys["zone"], msg)
    assert len(out) == 2 and all(o.startswith("dkim=pass ") for o in out)


def test_rfc8463_cross(keys):
    """The RFC 8463 example as tern re-signs it verifies in dkimpy."""
    td = Path(os.environ.get("TERN_TESTDATA")
              or Path(__file__).resolve().parents[3] / "shared" / "testdata")
    rfc = td / "dkim" / "rfc8463"
    signed = (rfc / "rfc8463-A3-signed.eml").read_bytes()
    msg = signed[signed.index(b"From: "):]
    records = dict(line.split(" ", 1) for line in
                   (rfc / "dns-records.txt").read_text().splitlines()
                   if line.strip())
    r = subprocess.run(
        [str(DRIVER), "sign", str(rfc / "brisbane-ed25519-seed.b64"),
         "football.example.com", "brisbane", "-t", "1528637909",
         "-i", "@football.example.com",
         "-h", "from:to:subject:date:message-id:from:subject:date"],
        input=msg, capture_output=True, timeout=30, check=True)
    assert b"b=/gCrinpcQOoIfuHNQIbq" in r.stdout
    assert dkim.verify(r.stdout + msg, dnsfunc=_dnsfunc(records))


# ------------------------------------------------------------- OpenDKIM

NSRUN = r'''
import socket, struct, subprocess, sys, threading

def qname(data, off):
    labels = []
    while data[off]:
        n = data[off]
        labels.append(data[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return ".".join(labels), off + 1

def answer(zone, data):
    ident, flags = struct.unpack("!HH", data[:4])
    name, off = qname(data, 12)
    qtype, = struct.unpack("!H", data[off:off + 2])
    values = zone.get(name.lower(), []) if qtype == 16 else []
    rcode = 0 if name.lower() in zone else 3
    rrs = b""
    for v in values:
        raw = v.encode()
        chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
        rdata = b"".join(bytes([len(c)]) + c for c in chunks)
        rrs += b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 60, len(rdata))
        rrs += rdata
    head = struct.pack("!HHHHHH", ident, 0x8400 | (flags & 0x0100) | rcode,
                       1, len(values), 0, 0)
    return head + data[12:off + 4] + rrs

zone = {}
for line in open(sys.argv[1]):
    if line.strip():
        n, v = line.strip().split(None, 1)
        zone.setdefault(n.lower(), []).append(v)
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["mount", "--bind", sys.argv[2], "/etc/resolv.conf"],
               check=True)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))

def serve():
    while True:
        data, peer = s.recvfrom(4096)
        try:
            s.sendto(answer(zone, data), peer)
        except Exception:
            pass

threading.Thread(target=serve, daemon=True).start()
r = subprocess.run(["opendkim-testmsg"], stdin=open(sys.argv[3], "rb"),
                   capture_output=True, timeout=30)
sys.stdout.write(r.stderr.decode(errors="replace"))
sys.exit(r.returncode)
'''


@pytest.fixture(scope="module")
def opendkim(keys):
    if shutil.which("opendkim-testmsg") is None:
        pytest.skip("opendkim-testmsg not installed (opendkim-tools)")
    if os.geteuid() != 0 or shutil.which("unshare") is None or \
            shutil.which("ip") is None:
        pytest.skip("OpenDKIM verification needs root for a private "
                    "network and mount namespace (its keys come only "
                    "from /etc/resolv.conf's server)")
    probe = subprocess.run(["unshare", "-m", "-n", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare -m -n not permitted here: "
                    + probe.stderr.decode(errors="replace"))
    d = keys["dir"]
    (d / "nsrun.py").write_text(NSRUN)
    (d / "resolv.conf").write_text("nameserver 127.0.0.1\n")

    def verify(msg):
        path = d / "msg.eml"
        path.write_bytes(msg)
        r = subprocess.run(
            ["unshare", "-m", "-n", sys.executable, str(d / "nsrun.py"),
             str(keys["zone"]), str(d / "resolv.conf"), str(path)],
            capture_output=True, timeout=60)
        return r.returncode, r.stdout.decode(errors="replace")
    return verify


@pytest.mark.parametrize("name", sorted(MESSAGES))
@pytest.mark.parametrize("canon", CANONS)
@pytest.mark.parametrize("alg", ALGS)
def test_tern_signs_opendkim_verifies(keys, opendkim, alg, canon, name):
    signed = tern_sign(keys, alg, MESSAGES[name], "-c", canon)
    rc, out = opendkim(signed)
    assert rc == 0, out
    rc, out = opendkim(tamper(signed))
    assert rc != 0 and "Bad signature" in out, out


def test_tern_signs_opendkim_verifies_l(keys, opendkim):
    signed = tern_sign(keys, "rsa-sha256", MESSAGES["plain"], "-l")
    rc, out = opendkim(signed)
    assert rc == 0, out


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_opendkim_signs_tern_verifies(keys, name):
    if shutil.which("opendkim-testmsg") is None:
        pytest.skip("opendkim-testmsg not installed (opendkim-tools)")
    r = subprocess.run(["opendkim-testmsg", "-C", "-d", DOMAIN, "-k",
                        str(keys["file"]["rsa-sha256"]), "-s", "rsa"],
                       input=MESSAGES[name], capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    signed = r.stdout
    assert b"a=rsa-sha1" in signed  # opendkim-testmsg's fixed algorithm
    # RFC 8301: refused by default …
    out = tern_verify(keys["zone"], signed)
    assert out[0].startswith("dkim=permerror reason=\"unsupported "
                             "algorithm\""), out
    # … and verified when rsa-sha1 is allowed (canonicalization interop)
    out = tern_verify(keys["zone"], signed, "-L")
    assert out[0].startswith("dkim=pass "), out
    out = tern_verify(keys["zone"], tamper(signed), "-L")
    assert out[0].startswith("dkim=fail "), out
