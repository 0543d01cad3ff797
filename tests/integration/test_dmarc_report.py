"""tern dmarc report: DMARC aggregate reports sent over SMTP to the rua
address quickstart publishes (postmaster@DOMAIN, here an alias of the
user who reads them) as a Google-style zip, a Microsoft-style gzip and a
Yahoo-style plain XML attachment, summarized as JSON and as text."""

import json
import re
import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest

from conftest import DOMAIN, run_tern, wait_until

DATA = Path(__file__).resolve().parents[1] / "data" / "dmarc-reports"
READER = f"dmarc@{DOMAIN}"
RUA = f"postmaster@{DOMAIN}"

REPORTS = [
    # (From, attachment file, MIME type)
    ("noreply-dmarc-support@google.example",
     "google.com!example.test!1704067200!1704153599.zip",
     "application/zip"),
    ("dmarcreport@microsoft.example",
     "enterprise.protection.outlook.com!example.test!1704067200!"
     "1704153600.xml.gz",
     "application/gzip"),
    ("dmarchelp@yahooinc.example", "yahoo.xml", "text/xml"),
]


def report_message(sender, filename, ctype, n):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = RUA
    msg["Subject"] = f"Report Domain: {DOMAIN} Submitter: {sender} #{n}"
    msg["Message-ID"] = f"<dmarc-report-{n}@reports.example>"
    msg.set_content(f"This is a DMARC aggregate report for {DOMAIN}.\n")
    maintype, subtype = ctype.split("/")
    msg.add_attachment((DATA / filename).read_bytes(), maintype=maintype,
                       subtype=subtype, filename=filename)
    return msg.as_bytes()


def inbox_files(t):
    box = t.data / "mail" / DOMAIN / "dmarc"
    return list(box.glob("new/*")) + list(box.glob("cur/*"))


@pytest.fixture(scope="module")
def tern(tern_module_instance):
    t = tern_module_instance(start=False)
    r = run_tern("user", "add", READER, "--password-stdin", conf=t.conf,
                 input="a fine password\n")
    assert r.returncode == 0, r.stderr
    r = run_tern("alias", "add", RUA, READER, conf=t.conf)
    assert r.returncode == 0, r.stderr
    t.start()
    return t


@pytest.fixture(scope="module")
def delivered(tern):
    s = smtplib.SMTP("127.0.0.1", tern.port("smtp"), timeout=30)
    s.ehlo("reports.example")
    for n, (sender, filename, ctype) in enumerate(REPORTS):
        s.sendmail(sender, [RUA], report_message(sender, filename, ctype, n))
    # One that is no report, and one whose attachment is broken.
    s.sendmail("someone@remote.example", [RUA],
               f"From: someone@remote.example\r\nTo: {RUA}\r\n"
               f"Subject: hello\r\n\r\nnot a report\r\n")
    broken = EmailMessage()
    broken["From"] = "reports@broken.example"
    broken["To"] = RUA
    broken["Subject"] = "Report Domain: example.test (cut short)"
    broken.set_content("report attached")
    broken.add_attachment(
        (DATA / "google-truncated.zip").read_bytes(), maintype="application",
        subtype="zip", filename="broken.zip")
    s.sendmail("reports@broken.example", [RUA], broken.as_bytes())
    s.quit()
    wait_until(lambda: len(inbox_files(tern)) >= len(REPORTS) + 2, 20,
               what="the report messages in the reader's Maildir")
    return tern


def report_json(t, *args):
    r = run_tern("dmarc", "report", *args, "--json", conf=t.conf)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_json_summary(delivered):
    doc = report_json(delivered, DOMAIN)
    assert doc["mailboxes"] == [READER]
    assert doc["messages_read"] == 5
    assert doc["reports"] == 3
    assert doc["duplicates"] == 0
    assert len(doc["problems"]) == 1
    assert "broken.zip" in doc["problems"][0]["where"]
    assert "no central directory" in doc["problems"][0]["error"]

    [d] = doc["domains"]
    assert d["domain"] == DOMAIN
    assert d["messages"] == 36
    assert d["dmarc"] == {"pass": 27, "fail": 9}
    assert d["spf"]["aligned_pass"] == 24
    assert d["dkim"]["aligned_pass"] == 27
    assert d["disposition"] == {"none": 36, "quarantine": 0, "reject": 0,
                                "other": 0}
    assert d["begin"] == 1704067200 and d["end"] == 1704153600
    assert d["begin_utc"] == "2024-01-01T00:00:00Z"

    reports = {r["org_name"]: r for r in d["reports"]}
    assert set(reports) == {"google.com", "Enterprise Outlook", "Yahoo"}
    g = reports["google.com"]
    assert g["report_id"] == "13837365129837483921"
    assert g["email"] == "noreply-dmarc-support@google.com"
    assert g["records"] == 3 and g["messages"] == 20
    assert g["policy"] == {"p": "none", "sp": "none", "pct": 100,
                           "adkim": "r", "aspf": "r"}
    assert g["found_in"].endswith(
        "google.com!example.test!1704067200!1704153599.xml")
    assert reports["Yahoo"]["policy"]["sp"] is None

    src = {s["source_ip"]: s for s in d["sources"]}
    # Sorted by messages, most first.
    assert [s["source_ip"] for s in d["sources"]][:2] == [
        "192.0.2.10", "203.0.113.66"]
    ours = src["192.0.2.10"]
    assert ours["messages"] == 22 and ours["verdict"] == "authorized"
    assert ours["spf"] == {"pass": 22, "fail": 0, "aligned_pass": 22,
                           "aligned_fail": 0}
    assert ours["dkim_pass_domains"] == [DOMAIN]
    assert set(ours["reporters"]) == {"google.com", "Enterprise Outlook",
                                      "Yahoo"}
    spoofer = src["203.0.113.66"]
    assert spoofer["messages"] == 6 and spoofer["verdict"] == "suspect"
    assert spoofer["dmarc"] == {"pass": 0, "fail": 6}
    assert spoofer["envelope_from"] == ["spoofer.example"]
    assert src["203.0.113.99"]["verdict"] == "suspect"
    fwd = src["198.51.100.7"]
    assert fwd["verdict"] == "forwarder"
    assert fwd["spf"]["pass"] == 3 and fwd["spf"]["aligned_pass"] == 0
    assert fwd["dkim"]["aligned_pass"] == 3
    # Failed both, but the reporter says a mailing list forwarded it.
    assert src["198.51.100.20"]["verdict"] == "forwarder"
    # IPv6 in inet_ntop() form.
    assert src["2001:db8::25"]["verdict"] == "authorized"


def test_all_domains_is_the_same(delivered):
    assert (report_json(delivered)["domains"] ==
            report_json(delivered, DOMAIN)["domains"])


def test_rua_option(delivered):
    # The reader's own address, with a subaddress as delivery takes it.
    doc = report_json(delivered, DOMAIN, "--rua", f"dmarc+reports@{DOMAIN}")
    assert doc["mailboxes"] == [READER] and doc["reports"] == 3
    r = run_tern("dmarc", "report", "--rua", "someone@elsewhere.example",
                 conf=delivered.conf)
    assert r.returncode == 69
    assert "not at a domain of this instance" in r.stderr


def test_text_summary(delivered):
    r = run_tern("dmarc", "report", DOMAIN, conf=delivered.conf)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith(f"{DOMAIN}: 3 reports from 3 reporters, "
                          f"2024-01-01 to 2024-01-02 (UTC), 36 messages "
                          f"from 6 sources\n")
    assert "DMARC pass 27, fail 9" in out
    assert re.search(r"^  google\.com +13837365129837483921 +"
                     r"2024-01-01 00:00 +2024-01-01 23:59 +p=none +20$",
                     out, re.M), out
    assert re.search(r"^  192\.0\.2\.10 +22 +22/0 +22/0 +22/0 +none +"
                     r"authorized$", out, re.M), out
    assert re.search(r"^  203\.0\.113\.66 +6 +0/6 +0/6 +0/6 +none +"
                     r"spoofer\?$", out, re.M), out
    assert re.search(r"^  198\.51\.100\.7 +3 +0/3 +3/0 +3/0 +none +"
                     r"forwarder$", out, re.M), out
    assert re.search(r"^    203\.0\.113\.66: 6 of 6 messages failed; From "
                     r"example\.test; envelope spoofer\.example; reported "
                     r"by Enterprise Outlook, google\.com$", out, re.M), out
    assert "Read 5 messages in 1 mailbox: 3 reports." in out
    assert re.search(r"^Not read:\n  dmarc@example\.test INBOX uid \d+ "
                     r"broken\.zip: zip: no central directory", out,
                     re.M), out


def test_other_domain_filter(delivered):
    # Reports are filed by their policy domain: none for a subdomain.
    r = run_tern("domain", "add", f"sub.{DOMAIN}", conf=delivered.conf)
    assert r.returncode == 0, r.stderr
    r = run_tern("dmarc", "report", f"sub.{DOMAIN}", "--rua", RUA,
                 "--json", conf=delivered.conf)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["reports"] == 0 and doc["domains"] == []
    assert "no DMARC aggregate reports for sub.example.test" in r.stderr


def test_no_rua_mailbox(delivered):
    # postmaster@sub.example.test is neither a user nor an alias.
    run_tern("domain", "add", f"sub.{DOMAIN}", conf=delivered.conf)
    r = run_tern("dmarc", "report", f"sub.{DOMAIN}", conf=delivered.conf)
    assert r.returncode == 69
    assert f"no user or alias postmaster@sub.{DOMAIN}" in r.stderr
    r = run_tern("dmarc", "report", "no-such.example", conf=delivered.conf)
    assert r.returncode == 65
    r = run_tern("dmarc", "report", "--bogus", conf=delivered.conf)
    assert r.returncode == 64
    r = run_tern("dmarc", "report", "--rua", conf=delivered.conf)
    assert r.returncode == 64


def test_no_reports_yet(tern_instance):
    t = tern_instance(start=False)
    r = run_tern("user", "add", RUA, "--password-stdin", conf=t.conf,
                 input="a fine password\n")
    assert r.returncode == 0, r.stderr
    r = run_tern("dmarc", "report", "--json", conf=t.conf)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["reports"] == 0 and doc["mailboxes"] == [RUA]
    assert "no DMARC aggregate reports found" in r.stderr
