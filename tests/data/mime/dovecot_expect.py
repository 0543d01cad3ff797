#!/usr/bin/env python3
"""Regenerate NAME.expected and NAME.sections for the .eml files given (all
in this directory when none are) from Dovecot's own answers: Debian's
dovecot-imapd run in PREAUTH mode on a throw-away Maildir, one message at a
time, as root (it drops to nobody). Each FETCH is sent twice and the second
answer kept: that is what Dovecot answers once its cache knows the message.

  apt-get install dovecot-imapd && tests/data/mime/dovecot_expect.py [X.eml]
"""
import glob, os, re, shutil, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
IMAP = "/usr/lib/dovecot/imap"
BODY = ["", "HEADER", "TEXT", "HEADER.FIELDS (Subject From X-Unknown)",
        "HEADER.FIELDS.NOT (Subject Content-Type)", "1", "1.MIME", "1.HEADER",
        "1.TEXT", "2", "2.MIME", "2.HEADER", "2.TEXT",
        "2.HEADER.FIELDS (Subject)", "2.HEADER.FIELDS.NOT (Subject)",
        "1.1", "1.2", "2.1", "2.2", "2.1.MIME", "2.2.MIME", "3", "3.MIME",
        "1.1.1", "2.1.1", "4", "3.1", "3.HEADER"]
BINARY = ["", "1", "2", "3", "4", "5", "1.1", "2.1", "2.2", "3.1"]
CONF = """mail_location = maildir:{d}/Maildir
ssl = no
log_path = /dev/stderr
mail_uid = 65534
mail_gid = 65534
first_valid_uid = 1
first_valid_gid = 1
"""


def imap(msg, items):
    d = tempfile.mkdtemp(prefix="dcv")
    os.chmod(d, 0o755)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(d, "Maildir", sub))
    with open(os.path.join(d, "Maildir/cur/1.msg:2,"), "wb") as f:
        f.write(msg)
    with open(os.path.join(d, "dovecot.conf"), "w") as f:
        f.write(CONF.format(d=d))
    subprocess.run(["chown", "-R", "65534:65534", d], check=True)
    fetch = "FETCH 1 (%s)\r\n" % " ".join(items)
    cmds = ("a SELECT INBOX\r\nf0 " + fetch + "f1 " + fetch +
            "z LOGOUT\r\n").encode()
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                          "--clear-groups", "env", "USER=test", "HOME=" + d,
                          IMAP, "-c", d + "/dovecot.conf"],
                         input=cmds, capture_output=True).stdout
    shutil.rmtree(d)
    return out


def value_end(b, i):
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


def fetch(msg, items):
    """The second FETCH answer: {name: raw value}, and the tagged line."""
    out = imap(msg, items)
    tag = re.search(rb"\r\nf1 ([^\r]*)", out).group(1)
    tag = re.sub(rb" \([0-9.+ ]* secs\)\.?$", b"", tag)
    first = out.find(b"* 1 FETCH (")
    start = out.find(b"* 1 FETCH (", first + 1) if first >= 0 else -1
    vals = {}
    if start < 0:
        return vals, tag
    j = start + len(b"* 1 FETCH (")
    while out[j:j + 1] != b")":
        k = re.compile(rb"[A-Z0-9.]+(\[[^\]]*\])?(<\d+>)?").match(out, j).end()
        e = value_end(out, k + 1)
        vals[out[j:k]] = out[k + 1:e]
        j = e + (1 if out[e:e + 1] == b" " else 0)
    return vals, tag


def unquote(v):
    m = re.match(rb"~?\{(\d+)\}\r\n", v)
    if m:
        return v[m.end():]
    if v.startswith(b'"'):
        return re.sub(rb"\\(.)", rb"\1", v[1:-1])
    return b""  # NIL


def main():
    files = sys.argv[1:] or sorted(glob.glob(os.path.join(HERE, "*.eml")))
    for path in files:
        base = path[:-4]
        msg = open(path, "rb").read()
        v, tag = fetch(msg, ["BODYSTRUCTURE", "BODY", "ENVELOPE"])
        with open(base + ".expected", "wb") as f:
            f.write(b"BODYSTRUCTURE " + v[b"BODYSTRUCTURE"] + b"\nBODY " +
                    v[b"BODY"] + b"\nENVELOPE " + v[b"ENVELOPE"] + b"\n")
        if os.path.basename(base) == "deep":
            continue  # sections of 110 levels say nothing new
        out = b""
        v, tag = fetch(msg, ["BODY.PEEK[%s]" % s for s in BODY])
        for s in BODY:
            key = [k for k in v if k.upper() == b"BODY[%s]" % s.upper().encode()]
            data = unquote(v[key[0]])
            out += b"BODY[%s] %d\n%s\n" % (s.encode(), len(data), data)
        for s in BINARY:
            v, tag = fetch(msg, ["BINARY.PEEK[%s]" % s])
            data = [x for k, x in v.items() if k.startswith(b"BINARY")]
            if not data:
                out += b"BINARY[%s] %s\n" % (s.encode(), tag)
            else:
                data = unquote(data[0])
                out += b"BINARY[%s] %d\n%s\n" % (s.encode(), len(data), data)
        with open(base + ".sections", "wb") as f:
            f.write(out)
        print(os.path.basename(base))


if __name__ == "__main__":
    main()
