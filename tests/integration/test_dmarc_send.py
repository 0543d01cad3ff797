"""DMARC aggregate reports that tern sends (RFC 7489 section 7.2): mail
arrives on the MX listener from domains whose DMARC records ask for
reports at an address this same instance hosts (reports.example, which
authorizes them with a _report._dmarc record); with dmarc_report_interval
10s the report comes within seconds, as a gzipped XML attachment that
xml.etree reads, with the right counts, policy and source address, and
`tern dmarc report` summarizes it. An external rua address that does not
authorize the reports gets none."""

import email
import email.policy
import gzip
import json
import re
import smtplib
import sqlite3
import time
import xml.etree.ElementTree as ET

import dkim
import pytest

from conftest import (DOMAIN, HOSTNAME, UnboundServer, as_sent,
                      dkim_records, dkim_rsa_key, dkim_signatures_verify,
                      run_tern, txt_strings, wait_until)

ALICE = f"alice@{DOMAIN}"
READER = "dmarc@reports.example"
PW = "dmarc send password"
INTERVAL = 10


@pytest.fixture(scope="module")
def keys():
    return dkim_rsa_key()


@pytest.fixture(scope="module")
def dns_server(keys):
    _, pub = keys
    records = [
        'rpt.example. TXT "v=spf1 ip4:127.0.0.0/8 -all"',
        '_dmarc.rpt.example. TXT "v=DMARC1; p=reject; '
        'rua=mailto:dmarc@reports.example,mailto:x@unauth.example"',
        f"sel._domainkey.rpt.example. TXT "
        f"{txt_strings('v=DKIM1; k=rsa; p=' + pub)}",
        '_dmarc.watch.example. TXT "v=DMARC1; p=none; pct=50; aspf=s; '
        'rua=mailto:dmarc@reports.example!10m"',
        'bad.example. TXT "v=spf1 ip4:192.0.2.1 -all"',
        # reports.example agrees to get both domains' reports (§7.1).
        'rpt.example._report._dmarc.reports.example. TXT "v=DMARC1"',
        'watch.example._report._dmarc.reports.example. TXT "v=DMARC1"',
    ]
    dns = UnboundServer(records, probe=("rpt.example", "TXT"))
    yield dns.address
    dns.close()


@pytest.fixture(scope="module")
def tern(tern_module_instance, dns_server):
    t = tern_module_instance(start=False,
                             extra_config=[f"resolver {dns_server}",
                                           f"dmarc_report_interval "
                                           f"{INTERVAL}s"])
    for args, stdin in ((("user", "add", ALICE, "--password-stdin"),
                         PW + "\n"),
                        (("domain", "add", "reports.example"), None),
                        (("user", "add", READER, "--password-stdin"),
                         PW + "\n")):
        r = run_tern(*args, conf=t.conf, input=stdin)
        assert r.returncode == 0, r.stderr
    t.start()
    return t


def message(subject, sender):
    return (f"From: {sender}\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            f"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{subject}@rpt.example>\r\n\r\n"
            f"Hello from {sender}.\r\n").encode()


def signed(subject, sender, keys):
    pem, _ = keys
    msg = message(subject, sender)
    sig = dkim.sign(msg, b"sel", b"rpt.example", pem,
                    include_headers=[b"from", b"to", b"subject", b"date"])
    return sig + msg


def inbox(t):
    box = t.data / "mail" / "reports.example" / "dmarc"
    return sorted(list(box.glob("new/*")) + list(box.glob("cur/*")))


def reports(t):
    """Every report message in the reader's Maildir: (message, XML root)."""
    out = []
    for path in inbox(t):
        msg = email.message_from_bytes(path.read_bytes(),
                                       policy=email.policy.default)
        for part in msg.iter_attachments():
            if part.get_content_type() == "application/gzip":
                data = part.get_payload(decode=True)
                out.append((msg, part, ET.fromstring(gzip.decompress(data))))
    return out


def count_for(t, domain):
    return sum(int(rec.findtext("row/count"))
               for _, _, root in reports(t)
               if root.findtext("policy_published/domain") == domain
               for rec in root.findall("record"))


@pytest.fixture(scope="module")
def sent(tern, keys):
    # Early in a period, so that the messages most likely share one
    # report (the checks add up several anyway).
    while time.time() % INTERVAL > INTERVAL / 2:
        time.sleep(0.2)
    with smtplib.SMTP("127.0.0.1", tern.port("smtp"), timeout=30) as s:
        s.ehlo("client.rpt.example")
        s.sendmail("a@rpt.example", [ALICE],
                   signed("rpt-1", "a@rpt.example", keys))
        for n in (2, 3):
            s.sendmail("a@rpt.example", [ALICE],
                       message(f"rpt-{n}", "a@rpt.example"))
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("x@bad.example", [ALICE],
                       message("rpt-4", "boss@rpt.example"))
        assert e.value.smtp_code == 550
        s.sendmail("x@bad.example", [ALICE],
                   message("watch-1", "w@watch.example"))
    wait_until(lambda: count_for(tern, "rpt.example") >= 4
               and count_for(tern, "watch.example") >= 1,
               4 * INTERVAL + 15, what="the DMARC reports in the Maildir")
    return tern


def test_report_message(sent):
    got = [(m, p, r) for m, p, r in reports(sent)
           if r.findtext("policy_published/domain") == "rpt.example"]
    assert got
    for msg, part, root in got:
        rid = root.findtext("report_metadata/report_id")
        subject = re.sub(r"\s+", " ", str(msg["Subject"]))
        assert subject == (f"Report Domain: rpt.example Submitter: "
                           f"{HOSTNAME} Report-ID: <{rid}>"), subject
        assert msg["From"].addresses[0].addr_spec == f"postmaster@{HOSTNAME}"
        assert msg["To"].addresses[0].addr_spec == READER
        assert msg.get_content_type() == "multipart/mixed"
        begin = int(root.findtext("report_metadata/date_range/begin"))
        end = int(root.findtext("report_metadata/date_range/end"))
        assert begin % INTERVAL == 0 and end == begin + INTERVAL - 1
        assert part.get_filename() == (f"{HOSTNAME}!rpt.example!{begin}!"
                                       f"{end}.xml.gz")
        # The envelope sender is the report address.
        assert str(msg["Return-Path"]).strip("<>") == f"postmaster@{HOSTNAME}"


def test_report_is_dkim_signed(sent):
    """RFC 7489 7.2.1.1: reports must pass DMARC themselves; lookup signs
    them for queue with the keys of DOMAIN (the From: is postmaster@ a
    host name in it: relaxed alignment)."""
    records = dkim_records(sent)
    assert inbox(sent)
    for path in inbox(sent):
        raw = as_sent(path.read_bytes())
        assert dkim_signatures_verify(raw, records) == [DOMAIN, DOMAIN]


def test_report_contents(sent):
    roots = [r for _, _, r in reports(sent)
             if r.findtext("policy_published/domain") == "rpt.example"]
    for root in roots:
        assert root.tag == "feedback"
        assert root.findtext("report_metadata/org_name") == HOSTNAME
        assert (root.findtext("report_metadata/email") ==
                f"postmaster@{HOSTNAME}")
        pol = root.find("policy_published")
        assert {e.tag: e.text for e in pol} == {
            "domain": "rpt.example", "adkim": "r", "aspf": "r",
            "p": "reject", "sp": "reject", "pct": "100"}
    ids = {r.findtext("report_metadata/report_id") for r in roots}
    assert len(ids) == len(roots)
    # Rows of the same kind add up across reports (a period boundary may
    # have split them).
    rows = {}
    for root in roots:
        for rec in root.findall("record"):
            assert rec.findtext("row/source_ip") == "127.0.0.1"
            assert rec.findtext("identifiers/header_from") == "rpt.example"
            dk = tuple((d.findtext("domain"), d.findtext("selector"),
                        d.findtext("result"))
                       for d in rec.findall("auth_results/dkim"))
            key = (rec.findtext("row/policy_evaluated/disposition"),
                   rec.findtext("row/policy_evaluated/dkim"),
                   rec.findtext("row/policy_evaluated/spf"),
                   rec.findtext("identifiers/envelope_from"),
                   rec.findtext("auth_results/spf/domain"),
                   rec.findtext("auth_results/spf/result"), dk)
            rows[key] = rows.get(key, 0) + int(rec.findtext("row/count"))
    assert rows == {
        ("none", "pass", "pass", "rpt.example", "rpt.example", "pass",
         (("rpt.example", "sel", "pass"),)): 1,
        ("none", "fail", "pass", "rpt.example", "rpt.example", "pass",
         ()): 2,
        ("reject", "fail", "fail", "bad.example", "bad.example", "fail",
         ()): 1,
    }, rows


def test_policy_none_report(sent):
    roots = [r for _, _, r in reports(sent)
             if r.findtext("policy_published/domain") == "watch.example"]
    assert roots
    pol = roots[0].find("policy_published")
    assert pol.findtext("p") == "none" and pol.findtext("pct") == "50"
    assert pol.findtext("aspf") == "s"
    [rec] = [rec for r in roots for rec in r.findall("record")]
    assert rec.findtext("row/count") == "1"
    assert rec.findtext("row/policy_evaluated/disposition") == "none"
    assert rec.findtext("row/policy_evaluated/spf") == "fail"
    assert rec.findtext("identifiers/header_from") == "watch.example"


def test_log_and_cleanup(sent):
    sent.wait_log(r"event=dmarc-report-sent domain=rpt\.example "
                  r"rua=dmarc@reports\.example records=\d+ messages=\d+",
                  timeout=5)
    # The external address never agreed: no report for it.
    sent.wait_log(r"event=dmarc-report-not-sent domain=rpt\.example "
                  r"rua=x@unauth\.example reason=unauthorized retry=no",
                  timeout=5)
    assert "to=<x@unauth.example>" not in sent.log()
    # Sent rows are gone from the store.
    db = sent.data / "queue" / "dmarc.db"

    def emptied():
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            return c.execute("SELECT COUNT(*) FROM records WHERE domain "
                             "IN ('rpt.example', 'watch.example')"
                             ).fetchone()[0] == 0
    wait_until(emptied, 15, what="the sent rows deleted")


def test_cli_reads_the_reports(sent):
    r = run_tern("dmarc", "report", "rpt.example", "--rua", READER, "--json",
                 conf=sent.conf)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    [d] = doc["domains"]
    assert d["domain"] == "rpt.example"
    assert d["messages"] == 4
    assert d["dmarc"] == {"pass": 3, "fail": 1}
    assert d["disposition"]["reject"] == 1
    assert [s["source_ip"] for s in d["sources"]] == ["127.0.0.1"]
    assert {rep["org_name"] for rep in d["reports"]} == {HOSTNAME}


def test_reports_can_be_turned_off(tern_instance, dns_server, keys):
    """dmarc_reports no: the same mail is checked as before, but nothing
    is recorded and no report leaves (the test waits out two periods)."""
    t = tern_instance(start=False,
                      extra_config=[f"resolver {dns_server}",
                                    f"dmarc_report_interval {INTERVAL}s",
                                    "dmarc_reports no"])
    for args, stdin in ((("user", "add", ALICE, "--password-stdin"),
                         PW + "\n"),
                        (("domain", "add", "reports.example"), None),
                        (("user", "add", READER, "--password-stdin"),
                         PW + "\n")):
        r = run_tern(*args, conf=t.conf, input=stdin)
        assert r.returncode == 0, r.stderr
    t.start()
    with smtplib.SMTP("127.0.0.1", t.port("smtp"), timeout=30) as s:
        s.ehlo("client.rpt.example")
        s.sendmail("a@rpt.example", [ALICE],
                   signed("off-1", "a@rpt.example", keys))
    assert t.wait_log(r"event=mail-auth spf=pass dkim=pass dmarc=pass")
    time.sleep(2 * INTERVAL + 2)
    assert inbox(t) == []
    assert "event=dmarc-report" not in t.log()
