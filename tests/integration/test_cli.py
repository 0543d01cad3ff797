"""The tern command line: help, version, usage errors, quickstart and its DNS
records, and `config check` on good and broken files."""

import base64
import hashlib
import random
import re
import subprocess

import pytest

from conftest import DOMAIN, HOSTNAME, free_port_offset, run_tern

EX_USAGE = 64
EX_CANTCREAT = 73
EX_CONFIG = 78


def openssl(*args, input=None):
    return subprocess.run(["openssl", *args], input=input,
                          capture_output=True, timeout=30,
                          check=True).stdout


# ---------------------------------------------------------------- help


@pytest.mark.parametrize("args", [
    ["version"], ["--version"], ["help"], ["--help"], ["help", "serve"],
    ["serve", "--help"], ["quickstart", "--help"], ["stop", "--help"],
    ["config", "--help"], ["config", "defaults"],
])
def test_help_and_version_exit_0(args):
    r = run_tern(*args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "no output"


def test_version_names_tern_and_libraries():
    out = run_tern("version").stdout
    assert re.match(r"tern \d+\.\d+", out), out
    assert "OpenSSL" in out


def test_help_lists_commands():
    out = run_tern("help").stdout
    for cmd in ("quickstart", "serve", "stop", "reload", "config",
                "version"):
        assert re.search(rf"^\s+{cmd}\s", out, re.M), f"{cmd} missing"


@pytest.mark.parametrize("args", [
    ["no-such-command"], ["--no-such-option"], ["help", "no-such-command"],
    ["quickstart"], ["config"], ["config", "frobnicate"], [],
])
def test_usage_errors_exit_64(args):
    r = run_tern(*args)
    assert r.returncode == EX_USAGE, (r.returncode, r.stderr)
    assert r.stderr.strip(), "a usage error must say something on stderr"


# ---------------------------------------------------------------- quickstart


@pytest.fixture(scope="module")
def qs(tmp_path_factory):
    """One quickstart run: (dir, stdout)."""
    d = tmp_path_factory.mktemp("qs") / "inst"
    r = run_tern("quickstart", "--dir", d, "--domain", DOMAIN,
                 "--port-offset", free_port_offset())
    assert r.returncode == 0, r.stderr
    return d, r.stdout


def txt_value(output, owner):
    """The TXT value(s) published at owner, the strings concatenated."""
    m = re.search(rf"^{re.escape(owner)}\s+IN TXT\s+(\(.*?\)|\".*?\")\s*$",
                  output, re.M | re.S)
    assert m, f"no TXT record for {owner} in:\n{output}"
    return "".join(re.findall(r'"([^"]*)"', m.group(1)))


def test_quickstart_creates_files(qs):
    d, _ = qs
    assert (d / "tern.conf").is_file()
    assert (d / "data" / "tls" / f"{HOSTNAME}.crt").is_file()
    assert (d / "data" / "tls" / f"{HOSTNAME}.key").is_file()
    keys = sorted(p.name for p in (d / "data" / "dkim" / DOMAIN).iterdir())
    assert len(keys) == 2 and re.fullmatch(r"\d{8}e\.key", keys[0]) \
        and re.fullmatch(r"\d{8}r\.key", keys[1]), keys


def test_quickstart_prints_every_record_kind(qs):
    _, out = qs
    assert re.search(rf"^{DOMAIN}\.\s+IN MX\s+10 {HOSTNAME}\.$", out, re.M)
    assert txt_value(out, f"{DOMAIN}.").startswith("v=spf1 ")
    sels = re.findall(rf"^(\d{{8}}[re])\._domainkey\.{DOMAIN}\.", out, re.M)
    assert sorted(s[-1] for s in sels) == ["e", "r"], sels
    dmarc = txt_value(out, f"_dmarc.{DOMAIN}.")
    assert re.match(r"v=DMARC1; p=none; rua=mailto:\S+@", dmarc), dmarc
    assert re.search(rf"^_25\._tcp\.{HOSTNAME}\.\s+IN TLSA\s+3 1 1 "
                     r"[0-9a-f]{64}$", out, re.M)


def test_quickstart_dkim_records_match_keys(qs):
    d, out = qs
    for kind in ("r", "e"):
        sel = re.search(rf"^(\d{{8}}{kind})\._domainkey", out, re.M).group(1)
        rec = txt_value(out, f"{sel}._domainkey.{DOMAIN}.")
        key = d / "data" / "dkim" / DOMAIN / f"{sel}.key"
        spki = openssl("pkey", "-in", str(key), "-pubout", "-outform", "DER")
        if kind == "r":
            assert rec.startswith("v=DKIM1; k=rsa; p="), rec
            expect = base64.b64encode(spki).decode()
            assert len(spki) > 256, "RSA key smaller than 2048 bits"
        else:
            assert rec.startswith("v=DKIM1; k=ed25519; p="), rec
            # RFC 8463: the raw 32-byte public key.
            assert len(spki) == 44
            expect = base64.b64encode(spki[-32:]).decode()
        assert rec.split("p=", 1)[1] == expect


def test_quickstart_rsa_key_is_2048_bits(qs):
    d, out = qs
    sel = re.search(r"^(\d{8}r)\._domainkey", out, re.M).group(1)
    text = openssl("pkey", "-in", str(d / "data" / "dkim" / DOMAIN /
                                       f"{sel}.key"), "-noout", "-text")
    assert b"2048 bit" in text


def test_quickstart_tlsa_is_sha256_of_spki(qs):
    d, out = qs
    cert = d / "data" / "tls" / f"{HOSTNAME}.crt"
    pub = openssl("x509", "-in", str(cert), "-noout", "-pubkey")
    der = openssl("pkey", "-pubin", "-outform", "DER", input=pub)
    want = hashlib.sha256(der).hexdigest()
    got = re.search(r"IN TLSA\s+3 1 1 ([0-9a-f]{64})", out).group(1)
    assert got == want


def test_quickstart_certificate(qs):
    d, _ = qs
    text = openssl("x509", "-in", str(d / "data" / "tls" /
                                      f"{HOSTNAME}.crt"),
                   "-noout", "-text").decode()
    assert re.search(rf"Subject:.*CN\s*=\s*{re.escape(HOSTNAME)}", text)
    assert f"DNS:{HOSTNAME}" in text
    assert "prime256v1" in text or "P-256" in text
    # The key file holds the certificate's key.
    key_pub = openssl("pkey", "-in", str(d / "data" / "tls" /
                                         f"{HOSTNAME}.key"), "-pubout")
    cert_pub = openssl("x509", "-in", str(d / "data" / "tls" /
                                          f"{HOSTNAME}.crt"),
                       "-noout", "-pubkey")
    assert key_pub == cert_pub


def test_quickstart_refuses_to_overwrite(qs):
    d, _ = qs
    before = (d / "tern.conf").read_bytes()
    r = run_tern("quickstart", "--dir", d, "--domain", "other.test",
                 "--port-offset", 20000)
    assert r.returncode == EX_CANTCREAT, (r.returncode, r.stderr)
    assert "tern.conf" in r.stderr
    assert (d / "tern.conf").read_bytes() == before


def test_quickstart_hostname_option(tmp_path):
    d = tmp_path / "inst"
    r = run_tern("quickstart", "--dir", d, "--domain", DOMAIN, "--hostname",
                 "mx.other.test", "--port-offset", 20000)
    assert r.returncode == 0, r.stderr
    assert (d / "data" / "tls" / "mx.other.test.crt").is_file()
    assert re.search(r"^_25\._tcp\.mx\.other\.test\.\s+IN TLSA", r.stdout,
                     re.M)
    assert re.search(r"^hostname mx\.other\.test$",
                     (d / "tern.conf").read_text(), re.M)


@pytest.mark.parametrize("args", [
    ["--domain", "not a domain"], ["--domain", "nodot"],
    ["--domain", DOMAIN, "--port-offset", "-1"],
    ["--domain", DOMAIN, "--port-offset", "70000"],
    ["--domain", DOMAIN, "--port-offset", "12x"],
])
def test_quickstart_rejects_bad_arguments(tmp_path, args):
    d = tmp_path / "inst"
    r = run_tern("quickstart", "--dir", d, *args)
    assert r.returncode == EX_USAGE, (r.returncode, r.stderr)
    assert not (d / "tern.conf").exists()


# ---------------------------------------------------------------- config


def test_config_check_ok(qs):
    d, _ = qs
    r = run_tern("config", "check", conf=d / "tern.conf")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{d / 'tern.conf'}: ok"


def test_config_show_round_trips(qs, tmp_path):
    d, _ = qs
    r = run_tern("config", "show", conf=d / "tern.conf")
    assert r.returncode == 0, r.stderr
    assert f"hostname {HOSTNAME}" in r.stdout
    # The effective config is itself a valid config.
    again = tmp_path / "tern.conf"
    again.write_text(r.stdout)
    r2 = run_tern("config", "check", conf=again)
    assert r2.returncode == 0, r2.stderr


def check_bad(conf, text_or_bytes, expect_line=None):
    """config check on a broken file: exit 78, one FILE:LINE: message."""
    if isinstance(text_or_bytes, bytes):
        conf.write_bytes(text_or_bytes)
    else:
        conf.write_text(text_or_bytes)
    r = run_tern("config", "check", conf=conf)
    assert r.returncode >= 0, f"crashed with signal {-r.returncode}"
    assert r.returncode == EX_CONFIG, (r.returncode, r.stdout, r.stderr)
    m = re.search(rf"^{re.escape(str(conf))}:(\d+): \S", r.stderr, re.M)
    assert m, f"no FILE:LINE: message in {r.stderr!r}"
    if expect_line is not None:
        assert int(m.group(1)) == expect_line, r.stderr
    return r.stderr


@pytest.fixture
def good_conf(qs, tmp_path):
    """The quickstart config text and a tern.conf path to write over."""
    d, _ = qs
    return (d / "tern.conf").read_text(), tmp_path / "tern.conf"


def test_config_unknown_key(good_conf):
    text, conf = good_conf
    lines = text.splitlines()
    lines.insert(3, "no_such_setting 1")
    err = check_bad(conf, "\n".join(lines) + "\n", expect_line=4)
    assert "no_such_setting" in err


def test_config_bad_value(good_conf):
    text, conf = good_conf
    err = check_bad(conf, text.replace("log_level info", "log_level loud"))
    assert "loud" in err


@pytest.mark.parametrize("setting", [
    "certificate_check_interval 5 minutes", "certificate_check_interval 1ms",
    "shutdown_timeout -1s", "log_syslog maybe",
])
def test_config_bad_values(good_conf, setting):
    text, conf = good_conf
    check_bad(conf, text + setting + "\n")


def test_config_unclosed_block(good_conf):
    _, conf = good_conf
    check_bad(conf, "hostname mail.example.test\nlistener smtp {\n"
                    "\taddress 127.0.0.1\n\tport 2525\n")


def test_config_stray_close(good_conf):
    _, conf = good_conf
    check_bad(conf, "hostname mail.example.test\n}\n", expect_line=2)


def test_config_include_missing_file(good_conf):
    text, conf = good_conf
    err = check_bad(conf, text + "include not-there.conf\n",
                    expect_line=text.count("\n") + 1)
    assert "not-there.conf" in err


def test_config_include_cycle(good_conf):
    text, conf = good_conf
    check_bad(conf, text + "include tern.conf\n")


def test_config_error_in_included_file(good_conf):
    text, conf = good_conf
    inc = conf.parent / "extra.conf"
    inc.write_text("# comment\nbogus_thing yes\n")
    conf.write_text(text + "include extra.conf\n")
    r = run_tern("config", "check", conf=conf)
    assert r.returncode == EX_CONFIG, r.stderr
    assert re.search(rf"^{re.escape(str(inc))}:2: ", r.stderr, re.M), \
        r.stderr


def test_config_duplicate_setting(good_conf):
    text, conf = good_conf
    check_bad(conf, text + "log_level debug\n",
              expect_line=text.count("\n") + 1)


def test_config_listener_without_port(good_conf):
    _, conf = good_conf
    check_bad(conf, "hostname mail.example.test\nlistener smtp {\n"
                    "\taddress 127.0.0.1\n}\n")


def test_config_oversized_line(good_conf):
    text, conf = good_conf
    check_bad(conf, text + "hostname " + "a" * 10000 + "\n",
              expect_line=text.count("\n") + 1)


@pytest.mark.parametrize("junk", [
    b"hostname mail.example.test\n\x00\x01\x02\n",
    b"hostname mail.example.test\nlog_level \xff\xfe\n",
    b"\x1b[31mhostname\x1b[0m x\n",
    b"hostname " + b"x " * 200 + b"\n",
    b"a {\n" * 20,
    b"\"unterminated\n",
    b"hostname \"a\\",
])
def test_config_junk(good_conf, junk):
    _, conf = good_conf
    check_bad(conf, junk)


def test_config_random_bytes_never_crash(good_conf):
    _, conf = good_conf
    rng = random.Random(4242)
    for i in range(20):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6000)))
        if i % 2:  # mostly text, with junk mixed in
            data = b"hostname mail.example.test\nlistener smtp {\n" + data
        conf.write_bytes(data)
        r = run_tern("config", "check", conf=conf)
        assert r.returncode >= 0, f"crashed with signal {-r.returncode}"
        assert r.returncode == EX_CONFIG, (i, r.returncode, r.stderr)
        assert re.search(rf"^{re.escape(str(conf))}:\d+: ", r.stderr, re.M),\
            (i, r.stderr)


def test_config_missing_file(tmp_path):
    conf = tmp_path / "nope" / "tern.conf"
    r = run_tern("config", "check", conf=conf)
    assert r.returncode == EX_CONFIG
    assert str(conf) in r.stderr
