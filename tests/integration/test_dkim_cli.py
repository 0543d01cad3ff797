"""`tern dkim list|genkey|rotate|activate|retire`: the DKIM keys of each
domain and their life cycle (pending → active → retired → deleted), the DNS
records printed for them, and which keys the running server signs with."""

import base64
import email
import imaplib
import json
import os
import re
import smtplib
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import DOMAIN, client_tls_context, run_tern, wait_until

EX_USAGE = 64
EX_DATAERR = 65

ALICE = f"alice@{DOMAIN}"
PW = "dkim cli password"
OTHER = "other.test"


# ---------------------------------------------------------------- helpers


def dkim(t, *args, input=None):
    return run_tern("dkim", *args, conf=t.conf, input=input)


def ok(t, *args):
    r = dkim(t, *args)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return r


def keys(t, domain=None):
    """`tern dkim list [DOMAIN] --json`, parsed."""
    r = ok(t, "list", *([domain] if domain else []), "--json")
    return json.loads(r.stdout)


def by_state(t, domain=DOMAIN):
    out = {"active": set(), "pending": set(), "retired": set()}
    for k in keys(t, domain):
        assert k["domain"] == domain
        out[k["state"]].add(k["selector"])
    return out


def key_dir(t, domain=DOMAIN):
    return t.data / "dkim" / domain


def file_record(path):
    """The DKIM TXT value a key file should publish (RFC 6376, RFC 8463)."""
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        der = pub.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)
        return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    raw = pub.public_bytes(serialization.Encoding.Raw,
                           serialization.PublicFormat.Raw)
    return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()


def txt_value(output, owner):
    """The TXT value printed for owner (BIND syntax), strings joined."""
    m = re.search(rf"^{re.escape(owner)}\s+IN TXT\s+(\(.*?\)|\".*?\")\s*$",
                  output, re.M | re.S)
    assert m, f"no TXT record for {owner} in:\n{output}"
    return "".join(re.findall(r'"([^"]*)"', m.group(1)))


def printed_selectors(output, domain=DOMAIN):
    return set(re.findall(rf"^([a-z0-9-]+)\._domainkey\.{re.escape(domain)}"
                          r"\.\s+IN TXT", output, re.M))


def assert_records_match_files(t, domain=DOMAIN):
    for k in keys(t, domain):
        path = key_dir(t, domain) / {"active": "", "pending": "pending",
                                     "retired": "retired"}[k["state"]] \
            / f"{k['selector']}.key"
        assert k["path"] == str(path)
        assert k["record_name"] == f"{k['selector']}._domainkey.{domain}"
        assert k["record_value"] == file_record(path), k


def one_line_error(r, code):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines and lines[0].startswith("tern dkim"), r.stderr
    if code == EX_DATAERR:
        assert len(lines) == 1, r.stderr
    assert r.stdout == "", r.stdout


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def inst(tern_instance):
    """A quickstart instance, not running."""
    return tern_instance(start=False)


@pytest.fixture(scope="module")
def bad_inst(tern_module_instance):
    """One instance for the bad-input cases, which change nothing."""
    t = tern_module_instance(start=False)
    assert run_tern("domain", "add", OTHER, conf=t.conf).returncode == 0
    return t


# ---------------------------------------------------------------- list


def test_list_after_quickstart(inst):
    ks = keys(inst)
    assert len(ks) == 2, ks
    assert sorted(k["algorithm"] for k in ks) == ["ed25519", "rsa-2048"]
    assert all(k["state"] == "active" for k in ks)
    assert {k["selector"] for k in ks} == \
        printed_selectors(inst.quickstart_output)
    for k in ks:
        assert isinstance(k["mtime"], int) and k["mtime"] > 0
        assert txt_value(inst.quickstart_output,
                         k["record_name"] + ".") == k["record_value"]
    assert_records_match_files(inst)
    # Every domain (no argument) is the same here, and the text form
    # shows each key with its state and record.
    assert keys(inst, None) == ks
    text = ok(inst, "list").stdout
    for k in ks:
        assert re.search(rf"^{DOMAIN}\s+{k['selector']}\s+"
                         rf"{k['algorithm']}\s+active\s+\d{{4}}-\d\d-\d\d$",
                         text, re.M), text
        assert txt_value(text.replace("\n    ", "\n"),
                         k["record_name"] + ".") == k["record_value"]


def test_help():
    r = run_tern("dkim", "--help")
    assert r.returncode == 0 and "rotate" in r.stdout, r.stderr
    assert re.search(r"^\s+dkim\s", run_tern("help").stdout, re.M)


# ---------------------------------------------------------------- genkey


def test_genkey_for_a_new_domain(inst):
    r = run_tern("domain", "add", OTHER, conf=inst.conf)
    assert r.returncode == 0, r.stderr
    note = dkim(inst, "list")
    assert f"{OTHER} has no active DKIM key" in note.stderr
    r = ok(inst, "genkey", OTHER)
    ks = keys(inst, OTHER)
    assert sorted(k["algorithm"] for k in ks) == ["ed25519", "rsa-2048"]
    assert all(k["state"] == "active" for k in ks)
    assert printed_selectors(r.stdout, OTHER) == {k["selector"] for k in ks}
    for k in ks:
        assert re.fullmatch(r"\d{8}[re]", k["selector"]), k
        assert txt_value(r.stdout, k["record_name"] + ".") == \
            k["record_value"]
    assert_records_match_files(inst, OTHER)
    # Files 0600 and directories 0700, owned as quickstart's keys are.
    ref = os.stat(next(key_dir(inst).glob("*.key")))
    for d in (key_dir(inst, OTHER), key_dir(inst, OTHER) / "pending",
              key_dir(inst, OTHER) / "retired"):
        st = os.stat(d)
        assert stat.S_IMODE(st.st_mode) == 0o700, d
        assert (st.st_uid, st.st_gid) == (ref.st_uid, ref.st_gid), d
    for p in key_dir(inst, OTHER).glob("*.key"):
        st = os.stat(p)
        assert stat.S_IMODE(st.st_mode) == 0o600, p
        assert (st.st_uid, st.st_gid) == (ref.st_uid, ref.st_gid), p
    assert "has no active DKIM key" not in dkim(inst, "list").stderr
    # A second key of an algorithm that signs already: rotate does that.
    one_line_error(dkim(inst, "genkey", OTHER, "--algorithm", "rsa"),
                   EX_DATAERR)


def test_genkey_options(inst):
    assert run_tern("domain", "add", OTHER, conf=inst.conf).returncode == 0
    r = ok(inst, "genkey", OTHER, "--algorithm", "ed25519",
           "--selector", "Mail2026")
    assert printed_selectors(r.stdout, OTHER) == {"mail2026"}
    ok(inst, "genkey", OTHER, "--algorithm=rsa", "--bits=1024")
    ks = {k["selector"]: k for k in keys(inst, OTHER)}
    assert ks["mail2026"]["algorithm"] == "ed25519"
    rsa_keys = [k for k in ks.values() if k["algorithm"] == "rsa-1024"]
    assert len(rsa_keys) == 1 and rsa_keys[0]["state"] == "active", ks
    assert_records_match_files(inst, OTHER)


# ---------------------------------------------------------------- life cycle


def test_rotate_activate_retire(inst):
    old = by_state(inst)["active"]
    assert len(old) == 2
    r = ok(inst, "rotate", DOMAIN)
    new = printed_selectors(r.stdout)
    assert len(new) == 2 and not new & old, (new, old)
    assert re.search(rf"dkim activate {DOMAIN} " + r"[a-z0-9-]+ [a-z0-9-]+$",
                     r.stdout, re.M), r.stdout
    st = by_state(inst)
    assert st == {"active": old, "pending": new, "retired": set()}, st
    # Pending keys are not where lookup signs from.
    assert {p.stem for p in key_dir(inst).glob("*.key")} == old
    assert {p.stem for p in (key_dir(inst) / "pending").glob("*.key")} \
        == new
    for k in keys(inst):
        if k["state"] == "pending":
            assert txt_value(r.stdout, k["record_name"] + ".") == \
                k["record_value"]
    assert_records_match_files(inst)
    # A second rotation waits for the first one.
    one_line_error(dkim(inst, "rotate", DOMAIN), EX_DATAERR)

    r = ok(inst, "activate", DOMAIN)
    st = by_state(inst)
    assert st == {"active": new, "pending": set(), "retired": old}, st
    assert {p.stem for p in key_dir(inst).glob("*.key")} == new
    for sel in old:
        assert f"dkim retire {DOMAIN} {sel}" in r.stdout, r.stdout
    assert_records_match_files(inst)

    # Retiring an active key needs --force; a retired key is deleted.
    one_line_error(dkim(inst, "retire", DOMAIN, sorted(new)[0]), EX_DATAERR)
    r = ok(inst, "retire", DOMAIN, *sorted(old))
    for sel in old:
        assert f"{sel}._domainkey.{DOMAIN} can be removed" in r.stdout
    st = by_state(inst)
    assert st == {"active": new, "pending": set(), "retired": set()}, st
    assert not list((key_dir(inst) / "retired").glob("*.key"))
    one_line_error(dkim(inst, "retire", DOMAIN, sorted(old)[0]), EX_DATAERR)
    # A deleted key's selector is not chosen again (its record may linger).
    r = ok(inst, "rotate", DOMAIN)
    again = printed_selectors(r.stdout)
    assert len(again) == 2 and not again & (old | new), (again, old, new)


def test_rotate_one_algorithm_and_roll_back(inst):
    before = {k["algorithm"]: k["selector"] for k in keys(inst)}
    r = ok(inst, "rotate", DOMAIN, "--algorithm", "rsa", "--bits", "1024")
    (sel,) = printed_selectors(r.stdout)
    assert re.fullmatch(r"\d{8}r(-\d+)?", sel), sel
    pending = [k for k in keys(inst) if k["state"] == "pending"]
    assert [(k["selector"], k["algorithm"]) for k in pending] == \
        [(sel, "rsa-1024")]
    ok(inst, "activate", DOMAIN, sel)
    st = by_state(inst)
    assert st["active"] == {sel, before["ed25519"]}, st
    assert st["retired"] == {before["rsa-2048"]}, st
    # Activating a retired key takes it back (the new one is retired).
    ok(inst, "activate", DOMAIN, before["rsa-2048"])
    st = by_state(inst)
    assert st["active"] == set(before.values()), st
    assert st["retired"] == {sel}, st
    # A pending key can be dropped without ever signing.
    r = ok(inst, "rotate", DOMAIN, "--algorithm", "ed25519")
    (sel2,) = printed_selectors(r.stdout)
    ok(inst, "retire", DOMAIN, sel2)
    assert by_state(inst)["pending"] == set()
    # --force takes an active key out of signing (kept as retired).
    ok(inst, "retire", DOMAIN, before["ed25519"], "--force")
    st = by_state(inst)
    assert before["ed25519"] in st["retired"], st
    assert "has no active DKIM key" not in dkim(inst, "list").stderr


# ---------------------------------------------------------------- signing


def submit_and_fetch(t, subject):
    msg = (f"From: {ALICE}\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
           f"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
           f"Message-ID: <{subject}@{DOMAIN}>\r\n\r\nHello.\r\n").encode()
    with smtplib.SMTP("127.0.0.1", t.port("submission"), timeout=30) as s:
        s.starttls(context=client_tls_context())
        s.login(ALICE, PW)
        s.sendmail(ALICE, [ALICE], msg)
    m = imaplib.IMAP4_SSL("127.0.0.1", t.port("imaps"),
                          ssl_context=client_tls_context(), timeout=10)
    m.login(ALICE, PW)
    found = []

    def find():
        m.select("INBOX")
        _, data = m.search(None, "SUBJECT", f'"{subject}"')
        if data[0]:
            found.append(data[0].split()[-1])
        return bool(found)
    wait_until(find, 15, what=f"message {subject}")
    _, data = m.fetch(found[0], "(BODY.PEEK[])")
    m.logout()
    raw = data[0][1]
    lines = raw.split(b"\r\n")
    while lines[0].split(b":")[0] in (b"Return-Path", b"Delivered-To"):
        lines.pop(0)
    return b"\r\n".join(lines)


def signed_with(t, raw):
    """The selectors of the message's signatures, each verified against
    the record `tern dkim list` gives for it."""
    dkimpy = pytest.importorskip("dkim")
    records = {k["record_name"] + ".": k["record_value"].encode()
               for k in keys(t)}
    d = dkimpy.DKIM(raw)
    sigs = [v for k, v in d.headers if k.lower() == b"dkim-signature"]

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return records.get(name, b"")
    for i in range(len(sigs)):
        assert d.verify(idx=i, dnsfunc=dnsfunc), sigs[i]
    return {re.search(rb"\bs=([a-z0-9-]+)", v).group(1).decode()
            for v in sigs}


def test_server_signs_with_active_keys_only(tern_instance):
    t = tern_instance(start=False)
    r = run_tern("user", "add", ALICE, "--password-stdin", conf=t.conf,
                 input=PW + "\n")
    assert r.returncode == 0, r.stderr
    t.start()
    old = by_state(t)["active"]
    ok(t, "rotate", DOMAIN)
    new = by_state(t)["pending"]
    assert signed_with(t, submit_and_fetch(t, "rotated")) == old
    ok(t, "activate", DOMAIN)
    # retired keys are kept (records still published) but do not sign
    assert by_state(t)["retired"] == old
    assert signed_with(t, submit_and_fetch(t, "activated")) == new


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("args,code", [
    (["list", "not a domain"], EX_DATAERR),
    (["list", "nosuch.test"], EX_DATAERR),
    (["list", "a.test", "b.test"], EX_USAGE),
    (["list", "--selector", "x"], EX_USAGE),
    (["frobnicate"], EX_USAGE),
    (["genkey"], EX_USAGE),
    (["genkey", "nosuch.test"], EX_DATAERR),
    (["genkey", "bad_domain!"], EX_DATAERR),
    (["genkey", OTHER, "--algorithm", "dsa"], EX_USAGE),
    (["genkey", OTHER, "--algorithm", "ed25519", "--bits", "2048"],
     EX_USAGE),
    (["genkey", OTHER, "--algorithm", "rsa", "--bits", "512"], EX_USAGE),
    (["genkey", OTHER, "--selector", "s1"], EX_USAGE),
    (["genkey", OTHER, "--algorithm", "rsa", "--selector", "../x"],
     EX_DATAERR),
    (["genkey", OTHER, "--algorithm", "rsa", "--selector", "a_b"],
     EX_DATAERR),
    (["genkey", OTHER, "--algorithm", "rsa", "--selector"], EX_USAGE),
    (["rotate", "nosuch.test"], EX_DATAERR),
    (["rotate", DOMAIN, "--algorithm", "dsa"], EX_USAGE),
    (["rotate", DOMAIN, "--bits", "99999"], EX_USAGE),
    (["rotate", DOMAIN, "--force"], EX_USAGE),
    (["activate", DOMAIN, "nosuch"], EX_DATAERR),
    (["activate", DOMAIN], EX_DATAERR),
    (["activate", DOMAIN, "../../x"], EX_DATAERR),
    (["activate", "nokeys.test"], EX_DATAERR),
    (["retire", DOMAIN], EX_USAGE),
    (["retire", DOMAIN, "nosuch"], EX_DATAERR),
])
def test_bad_input(bad_inst, args, code):
    inst = bad_inst
    before = sorted(str(p) for p in (inst.data / "dkim").rglob("*"))
    one_line_error(dkim(inst, *args), code)
    assert sorted(str(p) for p in (inst.data / "dkim").rglob("*")) == before
