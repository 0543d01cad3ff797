"""ARC interoperability (RFC 8617): tern seals and dkimpy validates, dkimpy
seals and tern validates, chains that mix both, and tampered chains that
both refuse. tern is driven through tests/unit/arc_driver ($TERN_BUILD_DIR,
default build/ of this tree).

dkimpy's ARC knows rsa-sha256 only (its ARC_HASH_ALGORITHMS), so Ed25519
seals are checked tern against tern. dkimpy seals only when the message
has an Authentication-Results field of its srv_id, and takes cv= from that
field's arc= result.

Run as: /usr/bin/python3 -m pytest tests/integration/test_arc_interop.py"""

import base64
import os
import subprocess
from pathlib import Path

import pytest

dkim = pytest.importorskip("dkim")
pytest.importorskip("authres")  # dkim.arc_sign needs it

BUILD = Path(os.environ.get("TERN_BUILD_DIR")
             or Path(__file__).resolve().parents[2] / "build")
DRIVER = BUILD / "tests" / "unit" / "arc_driver"

HOPS = [  # (domain, selector, authserv-id)
    ("lists.example.org", "rsa", "mx.lists.example.org"),
    ("fwd.example.net", "rsa", "mx.fwd.example.net"),
    ("relay.example.com", "rsa", "mx.relay.example.com"),
]

MESSAGE = (
    b"Received: from client.origin.example by mx.origin.example;\r\n"
    b"\tMon, 01 Jan 2024 00:00:00 +0000\r\n"
    b"From: Alice <alice@origin.example>\r\n"
    b"To: list@lists.example.org\r\n"
    b"Subject: lunch\r\n"
    b"  at noon?\r\n"
    b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
    b"Message-ID: <1@origin.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hi there,\r\n"
    b"\r\n"
    b"lunch  at noon?   \r\n"
    b"\r\n\r\n")


def _openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """An RSA key (every hop uses it under its own domain), an Ed25519
    key, their records and the zone file the driver reads."""
    if not DRIVER.is_file():
        pytest.fail(f"{DRIVER} not built (set TERN_BUILD_DIR)",
                    pytrace=False)
    d = tmp_path_factory.mktemp("arckeys")
    rsa = d / "rsa.key"
    ed = d / "ed.key"
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
             "rsa_keygen_bits:2048", "-out", str(rsa))
    _openssl("genpkey", "-algorithm", "ed25519", "-out", str(ed))
    rsa_p = base64.b64encode(_openssl("pkey", "-in", str(rsa), "-pubout",
                                      "-outform", "DER")).decode()
    ed_p = base64.b64encode(_openssl("pkey", "-in", str(ed), "-pubout",
                                     "-outform", "DER")[-32:]).decode()
    records = {f"rsa._domainkey.{dom}": f"v=DKIM1; k=rsa; p={rsa_p}"
               for dom, _, _ in HOPS}
    records["ed._domainkey.fwd.example.net"] = \
        f"v=DKIM1; k=ed25519; p={ed_p}"
    zone = d / "zone.txt"
    zone.write_text("".join(f"{n} {v}\n" for n, v in records.items()))
    return {"rsa": rsa, "ed": ed, "pem": rsa.read_bytes(),
            "records": records, "zone": zone}


def _dnsfunc(records):
    def lookup(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return records.get(name.rstrip(".").lower(), "").encode()
    return lookup


# ------------------------------------------------------------ the driver

def tern_seal(keys, msg, hop, authres, *args, key="rsa"):
    """msg with tern's ARC set on top (hop: index into HOPS). Without
    -c in args the driver validates first and seals with what it found."""
    dom, sel, _ = HOPS[hop]
    if key == "ed":
        sel = "ed"
    if "-c" not in args:
        args = ("-z", str(keys["zone"]), *args)
    r = subprocess.run(
        [str(DRIVER), "seal", str(keys[key]), dom, sel, "-r", authres,
         *args],
        input=msg, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    fields = r.stdout
    assert fields.startswith(b"ARC-Seal: i=") and fields.endswith(b"\r\n")
    for line in fields[:-2].split(b"\r\n"):
        assert len(line) <= 78, line
    return fields + msg


def tern_verify(keys, msg):
    """(Authentication-Results resinfo, summary line, set lines)."""
    r = subprocess.run([str(DRIVER), "verify", str(keys["zone"]), "-i",
                        "192.0.2.25"],
                       input=msg, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().splitlines()
    return lines[0], lines[1], lines[2:]


def dkimpy_seal(keys, msg, hop, results):
    """dkimpy's ARC set: it reads its own Authentication-Results field,
    which goes on top first (as an MTA would have written it)."""
    dom, sel, srv = HOPS[hop]
    msg = f"Authentication-Results: {srv}; {results}\r\n".encode() + msg
    fields = dkim.arc_sign(msg, sel.encode(), dom.encode(), keys["pem"],
                           srv.encode())
    assert len(fields) == 3, fields
    return b"".join(fields) + msg


def dkimpy_verify(keys, msg):
    cv, _, reason = dkim.arc_verify(msg,
                                    dnsfunc=_dnsfunc(keys["records"]))
    return cv, reason


def tamper(msg):
    return msg.replace(b"Hi there,", b"Hi there!", 1)


AR1 = ("mx.lists.example.org; spf=pass smtp.mailfrom=alice@origin.example;"
       " dkim=pass header.d=origin.example; dmarc=pass "
       "header.from=origin.example")
AR2 = ("mx.fwd.example.net; spf=fail smtp.mailfrom=lists.example.org; "
       "dkim=fail header.d=origin.example; dmarc=fail "
       "header.from=origin.example; arc=pass")


# ------------------------------------------------- tern seals, dkimpy checks

@pytest.mark.parametrize("hops", [1, 2, 3])
def test_tern_seals_dkimpy_verifies(keys, hops):
    msg = MESSAGE
    for h in range(hops):
        msg = tern_seal(keys, msg, h, AR1 if h == 0 else AR2)
    assert dkimpy_verify(keys, msg)[0] == b"pass"
    ar, summary, sets = tern_verify(keys, msg)
    assert ar.startswith(f"arc=pass (i={hops} "), ar
    assert "header.oldest-pass=0 smtp.remote-ip=192.0.2.25" in ar
    assert len(sets) == hops
    assert sets[0].startswith("i=1 cv=none as=pass as.d=lists.example.org")
    # tampered: both refuse
    assert dkimpy_verify(keys, tamper(msg))[0] == b"fail"
    ar, summary, _ = tern_verify(keys, tamper(msg))
    assert ar.startswith('arc=fail reason="message signature did not '
                         f'verify (i={hops})"'), ar


def test_tern_seal_tampered_field(keys):
    msg = tern_seal(keys, tern_seal(keys, MESSAGE, 0, AR1), 1, AR2)
    bad = msg.replace(b"dmarc=pass header.from", b"dmarc=none header.from")
    assert bad != msg
    assert dkimpy_verify(keys, bad)[0] == b"fail"
    ar, _, _ = tern_verify(keys, bad)
    assert ar.startswith('arc=fail reason="seal did not verify (i=2)"'), ar


# ------------------------------------------------- dkimpy seals, tern checks

@pytest.mark.parametrize("hops", [1, 2, 3])
def test_dkimpy_seals_tern_verifies(keys, hops):
    msg = dkimpy_seal(keys, MESSAGE, 0, "spf=pass smtp.mailfrom=a@b; "
                      "dkim=pass header.d=origin.example; dmarc=pass")
    for h in range(1, hops):
        msg = dkimpy_seal(keys, msg, h, "arc=pass; spf=fail "
                          "smtp.mailfrom=c@d; dmarc=fail")
    assert dkimpy_verify(keys, msg)[0] == b"pass"
    ar, summary, sets = tern_verify(keys, msg)
    assert ar.startswith(f"arc=pass (i={hops} spf="), ar
    assert "status=pass" in summary and f"count={hops}" in summary
    # the original assessment, as the first sealer recorded it
    assert sets[0].endswith("aar=mx.lists.example.org; spf=pass "
                            "smtp.mailfrom=a@b; dkim=pass "
                            "header.d=origin.example; dmarc=pass"), sets[0]
    for i, line in enumerate(sets):
        assert line.startswith(f"i={i + 1} cv={'none' if i == 0 else 'pass'}"
                               f" as=pass as.d={HOPS[i][0]} as.s=rsa"), line
    ar, _, _ = tern_verify(keys, tamper(msg))
    assert ar.startswith("arc=fail "), ar
    assert dkimpy_verify(keys, tamper(msg))[0] == b"fail"


# ------------------------------------------------------------ mixed chains

def test_dkimpy_then_tern(keys):
    msg = dkimpy_seal(keys, MESSAGE, 0, "spf=pass smtp.mailfrom=a@b")
    msg = tern_seal(keys, msg, 1, AR2)
    assert b"ARC-Seal: i=2; a=rsa-sha256;" in msg and b"cv=pass;" in msg
    assert dkimpy_verify(keys, msg)[0] == b"pass"
    assert tern_verify(keys, msg)[0].startswith("arc=pass (i=2 ")
    msg = dkimpy_seal(keys, msg, 2, "arc=pass; spf=pass smtp.mailfrom=e@f")
    assert dkimpy_verify(keys, msg)[0] == b"pass"
    assert tern_verify(keys, msg)[0].startswith("arc=pass (i=3 ")


def test_tern_then_dkimpy(keys):
    msg = tern_seal(keys, MESSAGE, 0, AR1)
    msg = dkimpy_seal(keys, msg, 1, "arc=pass; spf=fail smtp.mailfrom=x@y")
    assert dkimpy_verify(keys, msg)[0] == b"pass"
    ar, _, sets = tern_verify(keys, msg)
    assert ar.startswith("arc=pass (i=2 spf=fail) header.oldest-pass=0"), ar
    msg = tern_seal(keys, msg, 2, "mx.relay.example.com; arc=pass")
    assert dkimpy_verify(keys, msg)[0] == b"pass"
    assert tern_verify(keys, msg)[0].startswith("arc=pass (i=3)")


def test_list_footer_oldest_pass(keys):
    """A list validates, adds a footer, then seals with the status it
    found: the chain passes, AMS 1 no longer does (oldest-pass=2)."""
    msg = dkimpy_seal(keys, MESSAGE, 0, "spf=pass smtp.mailfrom=a@b")
    assert tern_verify(keys, msg)[0].startswith("arc=pass")
    footer = msg + b"-- \r\nlist footer\r\n"
    msg = tern_seal(keys, footer, 1, AR2, "-c", "pass")
    assert dkimpy_verify(keys, msg)[0] == b"pass"
    ar, _, sets = tern_verify(keys, msg)
    assert "header.oldest-pass=2" in ar, ar
    assert " ams=fail " in sets[0] and " ams=pass " in sets[1], sets


def test_failed_chain_sealed_cv_fail(keys):
    """A hop that finds the chain broken seals cv=fail over its own set
    alone; the chain ends there for both, and tern will not extend it."""
    msg = tamper(dkimpy_seal(keys, MESSAGE, 0, "spf=pass smtp.mailfrom=a@b"))
    msg = tern_seal(keys, msg, 1, AR2)
    assert b"cv=fail;" in msg
    ar, summary, _ = tern_verify(keys, msg)
    assert ar.startswith('arc=fail reason="chain already failed (i=2)"'), ar
    assert dkimpy_verify(keys, msg)[0] != b"pass"
    r = subprocess.run(
        [str(DRIVER), "seal", str(keys["rsa"]), "relay.example.com", "rsa",
         "-r", "mx.relay.example.com; arc=fail", "-c", "fail"],
        input=msg, capture_output=True, timeout=30)
    assert r.returncode == 1 and b"cv=fail" in r.stderr


# ------------------------------------------------------------ Ed25519

def test_ed25519_tern_only(keys):
    msg = tern_seal(keys, MESSAGE, 0, AR1)
    msg = tern_seal(keys, msg, 1, AR2, key="ed")
    assert b"a=ed25519-sha256;" in msg
    ar, _, sets = tern_verify(keys, msg)
    assert ar.startswith("arc=pass (i=2 "), ar
    assert "as.s=ed" in sets[1]
    ar, _, _ = tern_verify(keys, tamper(msg))
    assert ar.startswith("arc=fail "), ar
