"""IMAP end to end: front takes the login, store serves the session — with
Python's imaplib for the commands, raw sockets for IDLE and bad input, curl
and mbsync as real clients, and mail delivered over SMTP showing up."""

import email
import imaplib
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import DOMAIN, HOSTNAME, client_tls_context, run_tern, wait_until

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
PW = "imap test password"


@pytest.fixture(scope="module")
def tern(tern_module_instance):
    t = tern_module_instance(start=False)
    for addr in (ALICE, BOB):
        r = run_tern("user", "add", addr, "--password-stdin", conf=t.conf,
                     input=PW + "\n")
        assert r.returncode == 0, r.stderr
    t.start()
    return t


def login(t, user=ALICE):
    m = imaplib.IMAP4_SSL("127.0.0.1", t.port("imaps"),
                          ssl_context=client_tls_context(), timeout=10)
    typ, data = m.login(user, PW)
    assert typ == "OK", data
    return m


def send_mail(t, subject, to=ALICE, body="hello"):
    msg = (f"From: sender@remote.example\r\nTo: {to}\r\n"
           f"Subject: {subject}\r\nMessage-ID: <{subject}@remote.example>"
           f"\r\n\r\n{body}\r\n")
    with smtplib.SMTP("127.0.0.1", t.port("smtp"), timeout=15) as s:
        s.ehlo("remote.example")
        s.sendmail("sender@remote.example", [to], msg)
    return msg


def ok(res):
    typ, data = res
    assert typ == "OK", data
    return data


def wait_exists(m, mailbox, n, timeout=10):
    def check():
        typ, data = m.status(mailbox, "(MESSAGES)")
        got = int(re.search(rb"MESSAGES (\d+)", data[0]).group(1))
        return got >= n
    wait_until(check, timeout, what=f"{n} messages in {mailbox}")


# ------------------------------------------------------------ basics


def test_login_capabilities_and_default_folders(tern):
    m = login(tern)
    caps = ok(m.capability())[0].decode().split()
    for c in ("IMAP4rev1", "IMAP4rev2", "IDLE", "UIDPLUS", "MOVE",
              "SPECIAL-USE", "LITERAL+", "ENABLE", "NAMESPACE"):
        assert c in caps, caps
    assert not any(c.startswith("AUTH=") for c in caps)
    typ, data = m.list()
    names = {}
    for line in data:
        attrs, name = re.match(rb'\(([^)]*)\) "/" "?([^"]*)"?',
                               line).groups()
        names[name.decode()] = attrs.decode()
    for box, use in (("Drafts", "\\Drafts"), ("Sent", "\\Sent"),
                     ("Junk", "\\Junk"), ("Trash", "\\Trash"),
                     ("Archive", "\\Archive")):
        assert box in names and use in names[box], names
    assert "INBOX" in names
    m.logout()
    assert "event=session-start" in tern.log()


def test_smtp_delivery_is_served(tern):
    before = tern.log_mark()
    send_mail(tern, "served-1", body="the body of served-1")
    m = login(tern)
    wait_exists(m, "INBOX", 1)
    data = ok(m.select("INBOX"))
    n = int(data[0])
    data = ok(m.search(None, "SUBJECT", "served-1"))
    seq = data[0].split()[-1]
    data = ok(m.fetch(seq, "(RFC822.SIZE BODY.PEEK[] FLAGS UID)"))
    raw = data[0][1]
    size = int(re.search(rb"RFC822.SIZE (\d+)", data[0][0]).group(1))
    assert size == len(raw)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw)
    assert msg["Subject"] == "served-1"
    assert msg["Delivered-To"] == ALICE
    assert msg["Return-Path"] == "<sender@remote.example>"
    assert b"the body of served-1" in raw
    assert b"\\Seen" not in data[0][0]
    assert n >= 1
    m.logout()
    assert "event=stored" in tern.log_since(before)


def test_delivery_after_the_maildir_was_replaced(tern):
    """store keeps a recipient's mailbox store open between deliveries;
    when the Maildir is replaced meanwhile (restored from a backup, say)
    the next message goes into the new one, not the removed one."""
    send_mail(tern, "kept-1", to=BOB)
    m = login(tern, BOB)
    wait_exists(m, "INBOX", 1)
    m.logout()
    home = tern.data / "mail" / DOMAIN / "bob"
    stat = home.stat()
    shutil.rmtree(home)
    before = tern.log_mark()
    send_mail(tern, "kept-2", to=BOB)
    wait_until(lambda: f"event=stored to=<{BOB}>" in tern.log_since(before),
               15, what="the second delivery")
    assert home.stat().st_ino != stat.st_ino
    m = login(tern, BOB)
    wait_exists(m, "INBOX", 1)
    ok(m.select("INBOX"))
    data = ok(m.search(None, "SUBJECT", "kept-2"))
    assert data[0].split(), "the message went into the removed Maildir"
    m.logout()


def test_append_fetch_store_search_expunge(tern):
    m = login(tern, BOB)
    ok(m.create("Work"))
    msg = (b"From: a@b.example\r\nTo: bob@" + DOMAIN.encode() +
           b"\r\nSubject: appended\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800"
           b"\r\n\r\nline one\r\nline two\r\n")
    data = ok(m.append("Work", "(\\Flagged)",
                       imaplib.Time2Internaldate(time.time()), msg))
    assert re.search(rb"\[APPENDUID \d+ 1\]", data[0]), data
    ok(m.append("Work", None, None, msg.replace(b"appended", b"second")))
    data = ok(m.select("Work"))
    assert data[0] == b"2"
    data = ok(m.fetch("1", "(FLAGS RFC822.SIZE ENVELOPE BODY.PEEK[TEXT])"))
    head = data[0][0]
    assert b"\\Flagged" in head
    assert b"RFC822.SIZE %d" % len(msg) in head
    assert b'"appended"' in head
    assert data[0][1] == b"line one\r\nline two\r\n"
    # Non-PEEK body fetch sets \Seen.
    ok(m.fetch("2", "(BODY[HEADER.FIELDS (SUBJECT)])"))
    data = ok(m.fetch("2", "(FLAGS)"))
    assert b"\\Seen" in data[0]
    assert ok(m.search(None, "FLAGGED"))[0] == b"1"
    assert ok(m.search(None, "SEEN"))[0] == b"2"
    assert ok(m.search(None, "BODY", "two"))[0] == b"1 2"
    assert ok(m.search(None, "NOT", "SUBJECT", "second"))[0] == b"1"
    assert ok(m.uid("SEARCH", "OR", "FLAGGED", "SEEN"))[0] == b"1 2"
    ok(m.store("1", "+FLAGS", "(\\Deleted)"))
    data = ok(m.expunge())
    assert data[0] == b"1"
    assert ok(m.search(None, "ALL"))[0] == b"1"
    data = ok(m.uid("FETCH", "1:*", "(FLAGS)"))
    assert b"UID 2" in data[0]
    m.logout()


def test_copy_move_status_rename_delete(tern):
    m = login(tern, BOB)
    ok(m.create("Src"))
    for i in range(3):
        ok(m.append("Src", None, None,
                    b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i)))
    ok(m.select("Src"))
    typ, data = m.copy("1:2", "Trash")
    assert typ == "OK"
    assert re.search(rb"COPYUID \d+ 1:2 \d+", data[-1]), data
    typ, data = m._simple_command("MOVE", "3", "Archive")
    assert typ == "OK"
    data = ok(m.status("Src", "(MESSAGES UIDNEXT UNSEEN)"))
    assert b"MESSAGES 2" in data[0] and b"UIDNEXT 4" in data[0]
    typ, data = m.copy("1", "Nowhere")
    assert typ == "NO" and b"[TRYCREATE]" in data[0], data
    ok(m.close())
    ok(m.create("Src/Child"))
    ok(m.rename("Src", "Dst"))
    names = b" ".join(ok(m.list()))
    assert b"Dst/Child" in names and b'"Src"' not in names
    typ, _ = m.delete("INBOX")
    assert typ == "NO"
    ok(m.delete("Dst/Child"))
    ok(m.delete("Dst"))
    for bad in ("../x", "a//b", "/abs", "x/..", '"a/../b"'):
        try:
            typ, _ = m.create(bad)
        except imaplib.IMAP4.error:
            typ = "BAD"
        assert typ in ("NO", "BAD"), bad
    assert ok(m.select("INBOX"))
    m.logout()


def test_two_sessions_see_each_other(tern):
    a, b = login(tern, BOB), login(tern, BOB)
    ok(a.create("Shared"))
    ok(a.append("Shared", None, None, b"Subject: s\r\n\r\nx\r\n"))
    ok(a.select("Shared"))
    ok(b.select("Shared"))
    ok(b.store("1", "+FLAGS", "(\\Answered)"))
    ok(b.append("Shared", None, None, b"Subject: t\r\n\r\ny\r\n"))
    typ, data = a.noop()
    untagged = a.untagged_responses
    assert b"2" in untagged.get("EXISTS", [b""])[-1:] or \
        a.response("EXISTS")[1][-1] == b"2"
    data = ok(a.fetch("1", "(FLAGS)"))
    assert b"\\Answered" in data[0]
    a.logout()
    b.logout()


# ------------------------------------------------------------ IDLE


class Raw:
    """A raw IMAPS connection for what imaplib cannot do (IDLE, bad
    input)."""

    def __init__(self, t):
        ctx = client_tls_context()
        s = socket.create_connection(("127.0.0.1", t.port("imaps")),
                                     timeout=10)
        self.s = ctx.wrap_socket(s, server_hostname=HOSTNAME)
        self.buf = b""
        assert self.line().startswith(b"* OK")

    def send(self, data):
        self.s.sendall(data)

    def line(self, timeout=10):
        self.s.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def until(self, tag, timeout=10):
        lines = []
        while True:
            ln = self.line(timeout)
            lines.append(ln)
            if ln.startswith(tag + b" "):
                return lines

    def close(self):
        self.s.close()


def test_idle_sees_smtp_delivery_within_a_second(tern):
    r = Raw(tern)
    r.send(f'a LOGIN "{ALICE}" "{PW}"\r\n'.encode())
    assert r.until(b"a")[-1].startswith(b"a OK")
    r.send(b"b SELECT INBOX\r\n")
    assert r.until(b"b")[-1].startswith(b"b OK")
    r.send(b"c IDLE\r\n")
    assert r.line().startswith(b"+")
    send_mail(tern, "idle-1")
    sent = time.monotonic()
    ln = r.line(timeout=5)
    took = time.monotonic() - sent
    assert re.match(rb"\* \d+ EXISTS", ln), ln
    assert took < 1.5, took
    r.send(b"DONE\r\n")
    assert r.until(b"c")[-1].startswith(b"c OK")
    r.send(b"d LOGOUT\r\n")
    assert r.until(b"d")[-1].startswith(b"d OK")
    r.close()


# ------------------------------------------------------------ bad input


def test_bad_input_keeps_the_session_sane(tern):
    r = Raw(tern)
    r.send(f'a LOGIN "{ALICE}" "{PW}"\r\n'.encode())
    assert r.until(b"a")[-1].startswith(b"a OK")
    r.send(b"b FETCH (((\r\n")
    assert b"BAD" in r.until(b"b")[-1]
    r.send(b"c " + b"X" * 100000 + b"\r\n")
    assert b"BAD" in r.until(b"c")[-1] or b"BAD" in r.line()
    r.send(b"d SELECT INBOX\r\n")
    assert r.until(b"d")[-1].startswith(b"d OK")
    r.send(b"e FETCH 1:* (FLAGS)\r\n")
    assert r.until(b"e")[-1].startswith(b"e OK")
    # A synchronizing literal over the bound is refused, not awaited.
    r.send(b"f APPEND INBOX {999999999999}\r\n")
    assert b"f NO" in r.until(b"f")[-1] or b"f BAD" in r.until(b"f")[-1]
    r.send(b"g NOOP\r\n")
    assert r.until(b"g")[-1].startswith(b"g OK")
    r.close()


# ------------------------------------------------------------ real clients


def test_curl_fetches_a_message(tern):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    send_mail(tern, "curl-1", to=ALICE, body="fetched by curl")
    m = login(tern)
    wait_exists(m, "INBOX", 1)
    ok(m.select("INBOX", readonly=True))
    uid = ok(m.uid("SEARCH", "SUBJECT", "curl-1"))[0].split()[-1].decode()
    m.logout()
    r = subprocess.run(
        ["curl", "-sS", "--insecure", "--user", f"{ALICE}:{PW}",
         f"imaps://127.0.0.1:{tern.port('imaps')}/INBOX;UID={uid}"],
        capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"fetched by curl" in r.stdout


def test_mbsync_two_way(tern, tmp_path):
    if shutil.which("mbsync") is None:
        pytest.skip("isync not installed")
    user = f"carol@{DOMAIN}"
    r = run_tern("user", "add", user, "--password-stdin", conf=tern.conf,
                 input=PW + "\n")
    assert r.returncode == 0, r.stderr
    m = login(tern, user)
    ok(m.create("Projects/Alpha"))
    for i in range(3):
        ok(m.append("INBOX", None, None,
                    b"Subject: inbox %d\r\n\r\nbody\r\n" % i))
    ok(m.append("Projects/Alpha", "(\\Flagged)", None,
                b"Subject: alpha\r\n\r\nbody\r\n"))
    m.logout()
    local = tmp_path / "mail"
    local.mkdir()
    conf = tmp_path / "mbsyncrc"
    conf.write_text(f"""IMAPAccount tern
Host 127.0.0.1
Port {tern.port('imaps')}
User {user}
Pass "{PW}"
SSLType IMAPS
CertificateFile {tern.cert_path}

IMAPStore remote
Account tern

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")

    def sync():
        r = subprocess.run(["mbsync", "-V", "-c", str(conf), "-a"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout + r.stderr

    sync()
    inbox = list((local / "INBOX" / "cur").iterdir()) + \
        list((local / "INBOX" / "new").iterdir())
    assert len(inbox) == 3
    alpha = list((local / "Projects" / "Alpha" / "cur").iterdir()) + \
        list((local / "Projects" / "Alpha" / "new").iterdir())
    assert len(alpha) == 1 and alpha[0].name.endswith("F")
    # Change both sides: a flag and a new message locally, a new folder
    # remotely.
    f = inbox[0]
    f.rename(f.parent.parent / "cur" / (f.name.split(":2,")[0] + ":2,S"))
    (local / "INBOX" / "new" / "12345.local.host").write_bytes(
        b"Subject: from mbsync\n\nlocal body\n")
    m = login(tern, user)
    ok(m.create("Remote-made"))
    m.logout()
    sync()
    m = login(tern, user)
    ok(m.select("INBOX"))
    assert ok(m.search(None, "SUBJECT", '"from mbsync"'))[0] != b""
    assert len(ok(m.search(None, "SEEN"))[0].split()) == 1
    m.logout()
    assert (local / "Remote-made").is_dir()
    out = sync()
    # Nothing left to do the second time round.
    for counters in re.findall(r"(?:Far|Near): (\+\d+ \*\d+ #\d+ -\d+)", out):
        assert counters == "+0 *0 #0 -0", out


def test_search_body_through_the_text_index(tern):
    """SEARCH BODY and TEXT answer the same whether a message is in the
    text index or not: mail delivered over SMTP is indexed at once; files
    another tool put in a folder are indexed in the background after the
    SELECT that found them (event=text-indexed), and searches before and
    after agree, substrings inside words included."""
    send_mail(tern, "idx-1", to=BOB, body="a zymurgical brew, indexed")
    send_mail(tern, "idx-2", to=BOB, body="nothing to see")
    m = login(tern, BOB)
    wait_exists(m, "INBOX", 2)
    ok(m.select("INBOX"))
    hits = lambda *key: ok(m.uid("SEARCH", *key))[0].split()
    one = hits("SUBJECT", "idx-1")
    assert len(one) == 1
    assert hits("BODY", "zymurgical") == one
    assert hits("BODY", "MURGIC") == one
    assert hits("BODY", '"cal brew, ind"') == one
    assert hits("TEXT", "idx-1") == one      # header text
    assert hits("BODY", "idx-1") == []
    assert hits("BODY", "nowhere") == []
    ok(m.create("Imported"))
    m.logout()

    cur = tern.data / "mail" / DOMAIN / "bob" / ".Imported" / "cur"
    want = {"quokka": [], "okk": [], "invoice 4": []}
    for i in range(600):
        words = ["plain", "text", f"w{i}"]
        if i % 50 == 7:
            words.append("quokka")
            want["quokka"].append(i)
            want["okk"].append(i)
        if i % 97 == 3:
            words += ["invoice", f"4{i}"]
            want["invoice 4"].append(i)
        (cur / f"{1700000000 + i}.M{i}P1.othertool:2,S").write_bytes(
            f"Subject: imported {i}\n\n{' '.join(words)}\n".encode())
    mark = tern.log_mark()
    m = login(tern, BOB)
    ok(m.select("Imported"))

    def answers():
        out = {}
        for word in want:
            uids = ok(m.uid("SEARCH", "BODY", f'"{word}"'))[0].split()
            subjects = []
            for u in uids:
                d = ok(m.uid("FETCH", u, "(BODY.PEEK[HEADER.FIELDS "
                                         "(SUBJECT)])"))
                subjects.append(int(d[0][1].split()[-1]))
            out[word] = sorted(subjects)
        return out

    before = answers()          # the index may not have them yet
    tern.wait_log(r"event=text-indexed dir=\S+/bob messages=6\d\d",
                  timeout=30, since=mark)
    assert answers() == want
    assert before == want
    m.logout()


def test_big_answer_leaves_in_big_tls_records(tern):
    """front relays store's answer in TLS records bigger than the 4 KB
    pieces libevent reads (a Python SSL read returns one record at
    most)."""
    body = b"".join(b"line %06d of a big message\r\n" % i
                    for i in range(8000))
    msg = b"Subject: big relay\r\n\r\n" + body
    m = login(tern, BOB)
    ok(m.append("INBOX", None, None, msg))
    typ, data = m.select("INBOX")
    n = int(data[0])
    m.logout()
    r = Raw(tern)
    r.send(f'a LOGIN "{BOB}" "{PW}"\r\n'.encode())
    r.until(b"a")
    r.send(b"b SELECT INBOX\r\n")
    r.until(b"b")
    r.send(f"c FETCH {n} BODY.PEEK[]\r\n".encode())
    got, sizes = r.buf, []
    r.s.settimeout(10)
    while not re.search(rb"\r\nc OK", got):
        chunk = r.s.recv(65536)
        assert chunk, got[-200:]
        sizes.append(len(chunk))
        got += chunk
    r.close()
    assert msg in got
    assert max(sizes) > 4096, sizes[:20]
