#!/usr/bin/python3
"""Make the binary fixtures of tests/unit/test_dmarc_report.c from the XML
ones, reproducibly (fixed times): the containers receivers send and the
bombs and broken archives tern must refuse. Run from this directory; the
results are committed, so this only needs running when they change."""

import gzip
import io
import zipfile

FIXED = (2024, 1, 2, 0, 0, 0)


def gz(data, name):
    with open(name, "wb") as f:
        f.write(gzip.compress(data, compresslevel=9, mtime=0))


def zipped(members, name, method=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for member, data in members:
            info = zipfile.ZipInfo(member, date_time=FIXED)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    with open(name, "wb") as f:
        f.write(buf.getvalue())
    return buf.getvalue()


google = open("google.xml", "rb").read()
microsoft = open("microsoft.xml", "rb").read()
yahoo = open("yahoo.xml", "rb").read()

# Google: a zip holding one XML file named after the report.
z = zipped([("google.com!example.test!1704067200!1704153599.xml", google)],
           "google.com!example.test!1704067200!1704153599.zip")
# The same stored, and cut short (no central directory).
zipped([("google.com!example.test!1704067200!1704153599.xml", google)],
       "google-stored.zip", zipfile.ZIP_STORED)
with open("google-truncated.zip", "wb") as f:
    f.write(z[:len(z) * 2 // 3])
# Microsoft and Yahoo: gzip.
gz(microsoft,
   "enterprise.protection.outlook.com!example.test!1704067200!1704153600.xml.gz")
gz(yahoo, "yahoo.com!example.test!1704067200!1704153599.xml.gz")
g = gzip.compress(microsoft, compresslevel=9, mtime=0)
with open("microsoft-truncated.xml.gz", "wb") as f:
    f.write(g[:len(g) // 2])
# A zip with a readme beside two reports: only the XML members count.
zipped([("README.txt", b"not a report\n"), ("a/google.xml", google),
        ("yahoo.xml", yahoo)], "two-reports.zip")

# Bombs: 32 MiB of zeros (~1000:1) and of one repeated XML line (~300:1).
zeros = bytes(32 * 1024 * 1024)
gz(zeros, "bomb.xml.gz")
zipped([("bomb.xml", zeros)], "bomb.zip")
line = b"<record><row><source_ip>192.0.2.1</source_ip></row></record>\n"
xml = (b"<feedback>" + line * (32 * 1024 * 1024 // len(line)))
zipped([("report.xml", xml)], "bomb-xml.zip")
