"""TLS-RPT reports (RFC 8460) end to end: tlsrpt.db holds yesterday's
outbound session counts for three domains (as the outbound workers record
them, see test_mta_sts.py); at start the queue sends the report of the
domain whose _smtp._tls record names a mailto: rua (here a local mailbox,
through the outbox and queue_sign), skips the https: one, and forgets the
domain without a record. The report is read back from the Maildir: its
headers, the gzipped JSON, and its DKIM signatures (dkimpy)."""

import datetime
import email
import email.policy
import gzip
import json
import os
import sqlite3

import pytest

from conftest import (DOMAIN, HOSTNAME, UnboundServer, as_sent, dkim_records,
                      dkim_signatures_verify, run_tern, wait_until)

READER = f"tls-reports@{DOMAIN}"
PW = "tlsrpt password"
SCHEMA = ("CREATE TABLE IF NOT EXISTS sessions ("
          " day TEXT NOT NULL, domain TEXT NOT NULL, policy TEXT NOT NULL,"
          " mx TEXT NOT NULL, result TEXT NOT NULL, detail TEXT NOT NULL,"
          " count INTEGER NOT NULL,"
          " PRIMARY KEY (day, domain, policy, mx, result, detail))"
          " WITHOUT ROWID")


@pytest.fixture(scope="module")
def dns():
    records = [
        f'_smtp._tls.rpt.example. TXT "v=TLSRPTv1; rua=mailto:{READER}"',
        '_smtp._tls.https.example. TXT '
        '"v=TLSRPTv1;rua=https://reports.https.example/v1"',
        'norec.example. A 127.0.0.1',
    ]
    d = UnboundServer(records, probe=("_smtp._tls.rpt.example", "TXT"))
    yield d.address
    d.close()


def days():
    now = datetime.datetime.now(datetime.timezone.utc)
    return ((now - datetime.timedelta(days=1)).strftime("%Y-%m-%d"),
            now.strftime("%Y-%m-%d"))


ROWS = [
    ("rpt.example", "sts", "mx1.rpt.example", "success", "", 5),
    ("rpt.example", "sts", "mx1.rpt.example", "certificate-host-mismatch",
     'certificate is for "other.example"', 2),
    ("rpt.example", "no-policy-found", "mx2.rpt.example",
     "starttls-not-supported", "", 1),
    ("https.example", "tlsa", "mx.https.example", "success", "", 3),
    ("norec.example", "no-policy-found", "mx.norec.example", "success", "",
     4),
]


@pytest.fixture(scope="module")
def sent(tern_module_instance, dns):
    t = tern_module_instance(start=False, extra_config=[f"resolver {dns}"])
    r = run_tern("user", "add", READER, "--password-stdin", conf=t.conf,
                 input=PW + "\n")
    assert r.returncode == 0, r.stderr
    # Once started, data/queue exists with queue's own tlsrpt.db.
    t.start()
    t.stop()
    yesterday, today = days()
    path = t.data / "queue" / "tlsrpt.db"
    st = os.stat(t.data / "queue")
    with sqlite3.connect(path) as db:
        db.execute(SCHEMA)
        db.executemany("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [(yesterday, *row) for row in ROWS])
        db.execute("INSERT INTO sessions VALUES (?, 'rpt.example', 'sts',"
                   " 'mx1.rpt.example', 'success', '', 9)", (today,))
    os.chown(path, st.st_uid, st.st_gid)
    t.start()
    wait_until(lambda: reports(t), 30, interval=0.2,
               what="the TLS report in the reader's Maildir")
    return t


def reports(t):
    box = t.data / "mail" / DOMAIN / "tls-reports"
    return sorted(list(box.glob("new/*")) + list(box.glob("cur/*")))


def test_report_message(sent):
    (path,) = reports(sent)
    msg = email.message_from_bytes(path.read_bytes(),
                                   policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "tlsrpt"
    assert msg["TLS-Report-Domain"] == "rpt.example"
    assert msg["TLS-Report-Submitter"] == HOSTNAME
    assert msg["From"].addresses[0].addr_spec == f"postmaster@{HOSTNAME}"
    assert str(msg["Return-Path"]).strip("<>") == f"postmaster@{HOSTNAME}"
    (part,) = [p for p in msg.iter_attachments()
               if p.get_content_type() == "application/tlsrpt+gzip"]
    report = json.loads(gzip.decompress(part.get_payload(decode=True)))
    subject = " ".join(str(msg["Subject"]).split())
    assert subject == (f"Report Domain: rpt.example Submitter: {HOSTNAME} "
                       f"Report-ID: <{report['report-id']}>")
    yesterday, _ = days()
    begin = int(datetime.datetime.fromisoformat(yesterday).replace(
        tzinfo=datetime.timezone.utc).timestamp())
    assert part.get_filename() == (f"{HOSTNAME}!rpt.example!{begin}!"
                                   f"{begin + 86399}!"
                                   f"{report['report-id']}.json.gz")


def test_report_json(sent):
    (path,) = reports(sent)
    msg = email.message_from_bytes(path.read_bytes(),
                                   policy=email.policy.default)
    (part,) = [p for p in msg.iter_attachments()
               if p.get_content_type() == "application/tlsrpt+gzip"]
    report = json.loads(gzip.decompress(part.get_payload(decode=True)))
    yesterday, _ = days()
    assert report["organization-name"] == HOSTNAME
    assert report["contact-info"] == f"postmaster@{HOSTNAME}"
    assert report["date-range"] == {
        "start-datetime": f"{yesterday}T00:00:00Z",
        "end-datetime": f"{yesterday}T23:59:59Z"}
    by_type = {p["policy"]["policy-type"]: p for p in report["policies"]}
    assert set(by_type) == {"sts", "no-policy-found"}
    sts = by_type["sts"]
    assert sts["policy"]["policy-domain"] == "rpt.example"
    assert sts["summary"] == {"total-successful-session-count": 5,
                              "total-failure-session-count": 2}
    assert sts["failure-details"] == [{
        "result-type": "certificate-host-mismatch",
        "receiving-mx-hostname": "mx1.rpt.example",
        "failed-session-count": 2,
        "failure-reason-code": 'certificate is for "other.example"'}]
    none = by_type["no-policy-found"]
    assert none["summary"] == {"total-successful-session-count": 0,
                               "total-failure-session-count": 1}
    assert none["failure-details"][0]["result-type"] == \
        "starttls-not-supported"


def test_report_is_dkim_signed(sent):
    (path,) = reports(sent)
    assert dkim_signatures_verify(as_sent(path.read_bytes()),
                                  dkim_records(sent)) == [DOMAIN, DOMAIN]


def test_rows_go_once_handled(sent):
    yesterday, today = days()
    assert sent.wait_log(r"event=tlsrpt-report-sent domain=rpt\.example "
                         rf"day={yesterday} rua={READER}")
    assert sent.wait_log(r"event=tlsrpt-report-not-sent "
                         r"domain=https\.example .*"
                         r"reason=https-not-supported retry=no")
    path = sent.data / "queue" / "tlsrpt.db"

    def left():
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT day, domain, count FROM sessions"
                              " ORDER BY day, domain").fetchall()
    # Yesterday's rows went (sent, https only, no record); today's stay
    # for tomorrow's report.
    wait_until(lambda: left() == [(today, "rpt.example", 9)], 10,
               what="yesterday's rows forgotten")
