"""BODYSTRUCTURE, BODY and ENVELOPE as tern's IMAP server answers them,
compared with Debian's Dovecot (dovecot-imapd, run here in PREAUTH mode)
answering for the very files tern stored — for the corpus of tricky
messages in tests/data/mime (nested multiparts, message/rfc822, encoded
words, RFC 2231, broken MIME, 8-bit headers). Dovecot is asked twice and
its second answer kept: that is what it says once its cache knows the
message (its very first answer keeps the header's capitalisation of a
plain text/plain type)."""

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import DOMAIN, HOSTNAME, client_tls_context, run_tern

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mime"
DOVECOT_IMAP = "/usr/lib/dovecot/imap"
USER = f"corpus@{DOMAIN}"
PW = "corpus password"
ITEMS = ("BODYSTRUCTURE", "BODY", "ENVELOPE")
DOVECOT_CONF = """mail_location = maildir:{d}/Maildir
ssl = no
log_path = /dev/stderr
mail_uid = 65534
mail_gid = 65534
first_valid_uid = 1
first_valid_gid = 1
"""


def value_end(b, i):
    """End of the IMAP value starting at b[i] (list, string, literal,
    atom)."""
    if b[i:i + 1] == b"(":
        i += 1
        while True:
            while b[i:i + 1] == b" ":
                i += 1
            if b[i:i + 1] == b")":
                return i + 1
            i = value_end(b, i)
    if b[i:i + 1] == b'"':
        i += 1
        while b[i:i + 1] != b'"':
            i += 2 if b[i:i + 1] == b"\\" else 1
        return i + 1
    m = re.compile(rb"~?\{(\d+)\}\r\n").match(b, i)
    if m:
        return m.end() + int(m.group(1))
    while i < len(b) and b[i:i + 1] not in (b" ", b")", b"\r"):
        i += 1
    return i


def fetch_items(data, start):
    """{item: raw value} of the FETCH response whose "(" is at start."""
    vals = {}
    j = start + 1
    while data[j:j + 1] != b")":
        k = re.compile(rb"[A-Z0-9.]+").match(data, j).end()
        e = value_end(data, k + 1)
        vals[data[j:k].decode()] = data[k + 1:e]
        j = e + 1 if data[e:e + 1] == b" " else e
    return vals


def all_fetches(out):
    """Every "* N FETCH (…)" in a raw response stream: [(N, {item: v})]."""
    res = []
    for m in re.finditer(rb"\* (\d+) FETCH \(", out):
        res.append((int(m.group(1)), fetch_items(out, m.end() - 1)))
    return res


def tern_session(t, script):
    """Raw IMAPS session: login, then script; everything read back."""
    ctx = client_tls_context()
    s = ctx.wrap_socket(socket.create_connection(
        ("127.0.0.1", t.port("imaps")), timeout=30),
        server_hostname=HOSTNAME)
    s.sendall(f'l LOGIN "{USER}" "{PW}"\r\n'.encode() + script +
              b"z LOGOUT\r\n")
    out = b""
    while not re.search(rb"\r\nz OK[^\r]*\r\n$", out):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def dovecot_answer(path):
    """Dovecot's second FETCH answer for one Maildir file."""
    d = tempfile.mkdtemp(prefix="tern-dovecot-")
    try:
        os.chmod(d, 0o755)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(d, "Maildir", sub))
        shutil.copyfile(path, os.path.join(d, "Maildir", "cur",
                                           "1.corpus:2,"))
        with open(os.path.join(d, "dovecot.conf"), "w") as f:
            f.write(DOVECOT_CONF.format(d=d))
        subprocess.run(["chown", "-R", "65534:65534", d], check=True)
        fetch = "FETCH 1 (%s)\r\n" % " ".join(ITEMS)
        cmds = ("a SELECT INBOX\r\nf0 " + fetch + "f1 " + fetch +
                "z LOGOUT\r\n").encode()
        out = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "env", "USER=test", "HOME=" + d, DOVECOT_IMAP, "-c",
             d + "/dovecot.conf"],
            input=cmds, capture_output=True, timeout=30).stdout
    finally:
        shutil.rmtree(d, ignore_errors=True)
    fetches = all_fetches(out)
    assert len(fetches) == 2, out[-500:]
    return fetches[1][1]


def maildir_order(name):
    """tern's file names start SECONDS.MUSECPPID: their append order."""
    m = re.match(r"(\d+)\.M(\d+)P\d+Q(\d+)", name)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)))


@pytest.fixture(scope="module")
def tern(tern_module_instance):
    if not os.path.exists(DOVECOT_IMAP):
        pytest.fail("dovecot-imapd missing: scripts/install-deps")
    t = tern_module_instance(start=False)
    r = run_tern("user", "add", USER, "--password-stdin", conf=t.conf,
                 input=PW + "\n")
    assert r.returncode == 0, r.stderr
    t.start()
    return t


def test_corpus_matches_dovecot(tern):
    emls = sorted(CORPUS.glob("*.eml"))
    assert len(emls) >= 30
    script = b"c CREATE Corpus\r\n"
    for i, p in enumerate(emls):
        data = p.read_bytes()
        # A message with NUL goes as literal8 (RFC 3516 APPEND).
        lit = b"~{%d+}" if b"\0" in data else b"{%d+}"
        script += (b"a%d APPEND Corpus " % i + lit % len(data) +
                   b"\r\n" + data + b"\r\n")
    script += (b"s SELECT Corpus\r\nf FETCH 1:* (%s)\r\n" %
               " ".join(ITEMS).encode())
    out = tern_session(tern, script)
    bad = [ln for ln in out.split(b"\r\n")
           if re.match(rb"a\d+ (NO|BAD)", ln)]
    assert not bad and out.count(b" OK [APPENDUID ") == len(emls), bad
    ours = dict(all_fetches(out))
    assert len(ours) == len(emls)

    folder = tern.data / "mail" / DOMAIN / "corpus" / ".Corpus" / "cur"
    files = sorted(os.listdir(folder), key=maildir_order)
    assert len(files) == len(emls)
    mismatches = []
    for seq, (eml, name) in enumerate(zip(emls, files), start=1):
        theirs = dovecot_answer(folder / name)
        for item in ITEMS:
            if ours[seq].get(item) != theirs.get(item):
                mismatches.append(
                    f"{eml.name} {item}:\n tern    {ours[seq].get(item)!r}"
                    f"\n dovecot {theirs.get(item)!r}")
    assert not mismatches, "\n".join(mismatches[:5]) + \
        f"\n({len(mismatches)} differences)"
