"""SPF (RFC 7208) against a second implementation: a real unbound on
loopback serves a set of realistic SPF records, tern checks one message per
case arriving on its MX listener from the case's 127.0.0.0/8 address, and
pyspf (python3-spf over dnspython) checks the same identity against the
same server. Each case asserts that both give the result written in the
table, so the two cannot agree on a wrong answer unnoticed."""

import smtplib

import dns.resolver
import pytest
import spf

from conftest import DOMAIN, run_tern, txt_strings, UnboundServer

ALICE = f"alice@{DOMAIN}"
PW = "spf pyspf password"

# pyspf still calls the deprecated dns.resolver.query().
pytestmark = pytest.mark.filterwarnings(
    "ignore:please use dns.resolver.resolve:DeprecationWarning")

LONG = ("v=spf1 " + " ".join(f"ip4:198.51.100.{n}" for n in range(1, 25))
        + " ip4:127.0.25.0/24 -all")

RECORDS = [
    # ip4, a, mx (with and without a CIDR length)
    'ip4.example. TXT "v=spf1 ip4:127.0.1.1 ip4:127.0.2.0/24 -all"',
    'a.example. TXT "v=spf1 a a:hosts.a.example/24 -all"',
    "a.example. A 127.0.4.1",
    "hosts.a.example. A 127.0.5.1",
    'mx.example. TXT "v=spf1 mx mx:mx2.example/28 ~all"',
    "mx.example. MX 10 mx1.mx.example.",
    "mx.example. MX 20 mx2.mx.example.",
    "mx1.mx.example. A 127.0.6.1",
    "mx2.mx.example. A 127.0.6.2",
    "mx2.example. MX 10 mail.mx2.example.",
    "mail.mx2.example. A 127.0.7.1",
    # include: and redirect=
    'inc.example. TXT "v=spf1 include:_spf.inc.example ?all"',
    '_spf.inc.example. TXT "v=spf1 ip4:127.0.8.0/24 -all"',
    'incnone.example. TXT "v=spf1 include:nospf.example -all"',
    "nospf.example. A 127.0.0.9",
    'redir.example. TXT "v=spf1 redirect=_spf.inc.example"',
    'redirnone.example. TXT "v=spf1 redirect=nospf.example"',
    'redirall.example. TXT "v=spf1 ?all redirect=_spf.inc.example"',
    # all and the default result
    'plus.example. TXT "v=spf1 +all"',
    'noall.example. TXT "v=spf1 ip4:192.0.2.1"',
    # exists: and macros
    'exists.example. TXT "v=spf1 exists:%{i}._ip.%{d} -all"',
    "127.0.10.1._ip.exists.example. A 127.0.0.2",
    'users.example. TXT "v=spf1 exists:%{l}._u.%{d} -all"',
    "alice._u.users.example. A 127.0.0.2",
    'delim.example. TXT "v=spf1 exists:%{l1r-}._d.%{d} -all"',
    "john._d.delim.example. A 127.0.0.2",
    'macro2.example. TXT "v=spf1 include:_i.%{d} -all"',
    '_i.macro2.example. TXT "v=spf1 exists:%{o}._o.macro2.example -all"',
    "macro2.example._o.macro2.example. A 127.0.0.2",
    'mail.corp.example. TXT "v=spf1 exists:%{ir}.%{v}._spf.%{d2} -all"',
    "1.11.0.127.in-addr._spf.corp.example. A 127.0.0.2",
    'hmacro.example. TXT "v=spf1 exists:%{h}._h.%{d} -all"',
    "relay.hmacro.example._h.hmacro.example. A 127.0.0.2",
    # No ptr (nor %{p}): tern's resolver, libunbound, answers
    # 127.in-addr.arpa from its built-in local zone (NXDOMAIN), so PTR
    # records for the loopback clients used here never reach it.
    # exp= (tern's explanation is not visible over SMTP: the result only)
    'expfail.example. TXT "v=spf1 ip4:192.0.2.1 -all exp=why.%{d}"',
    'why.expfail.example. TXT "%{l} from %{i} is not authorized by %{o}"',
    # record selection and syntax
    'two.example. TXT "v=spf1 +all"',
    'two.example. TXT "v=spf1 -all"',
    'site.example. TXT "google-site-verification=4n0th3r-t0k3n"',
    'site.example. TXT "v=spf1 ip4:127.0.24.1 -all"',
    'typo.example. TXT "v=spf1 ip4:127.0.14.1 ipv4:127.0.14.2 -all"',
    'spf10.example. TXT "v=spf10 +all"',
    'upper.example. TXT "V=SPF1 IP4:127.0.18.1 -ALL"',
    'split.example. TXT "v=spf1 ip4:127.0" ".16.3 ip4:127.0.16.4 -all"',
    f"long.example. TXT {txt_strings(LONG)}",
    # the limits of §4.6.4: 10 DNS terms, 2 void lookups
    *[f'ok{k}.limit.example. TXT "v=spf1 include:ok{k + 1}.limit.example'
      f' -all"' for k in range(10)],
    'ok10.limit.example. TXT "v=spf1 ip4:127.0.19.0/24 -all"',
    *[f'over{k}.limit.example. TXT "v=spf1 include:over{k + 1}.limit'
      f'.example -all"' for k in range(11)],
    'over11.limit.example. TXT "v=spf1 ip4:127.0.19.0/24 -all"',
    'void.example. TXT "v=spf1 a:v1.void.example mx:v2.void.example '
    'exists:v3.void.example ip4:127.0.20.1 -all"',
    'void2.example. TXT "v=spf1 a:v1.void.example mx:v2.void.example '
    'ip4:127.0.20.2 -all"',
    # a CNAME to the record
    "alias.example. CNAME real.example.",
    'real.example. TXT "v=spf1 ip4:127.0.21.1 -all"',
    # HELO identity (MAIL FROM <>)
    'mail.heloa.example. TXT "v=spf1 a -all"',
    "mail.heloa.example. A 127.0.23.1",
]

HELO = "client.example"


def case(id, ip, sender, want, helo=HELO, pyspf=None):
    """One check: MAIL FROM sender ('' is <>: the HELO identity) from ip.
    pyspf: pyspf's known, different result (see its case)."""
    return pytest.param(ip, sender, helo, want, pyspf or want, id=id)


CASES = [
    case("ip4-single", "127.0.1.1", "a@ip4.example", "pass"),
    case("ip4-cidr", "127.0.2.77", "a@ip4.example", "pass"),
    case("ip4-fail", "127.0.3.1", "a@ip4.example", "fail"),
    case("a", "127.0.4.1", "a@a.example", "pass"),
    case("a-host-cidr", "127.0.5.200", "a@a.example", "pass"),
    case("mx-second", "127.0.6.2", "a@mx.example", "pass"),
    case("mx-host-cidr", "127.0.7.14", "a@mx.example", "pass"),
    case("mx-softfail", "127.0.7.20", "a@mx.example", "softfail"),
    case("include-pass", "127.0.8.5", "a@inc.example", "pass"),
    case("include-fail-no-match", "127.0.9.1", "a@inc.example", "neutral"),
    case("include-no-record", "127.0.8.6", "a@incnone.example", "permerror"),
    case("redirect-pass", "127.0.8.9", "a@redir.example", "pass"),
    case("redirect-no-record", "127.0.8.10", "a@redirnone.example",
         "permerror"),
    case("redirect-ignored-with-all", "127.0.8.11", "a@redirall.example",
         "neutral"),
    case("plus-all", "127.0.26.1", "a@plus.example", "pass"),
    case("no-all-default", "127.0.26.2", "a@noall.example", "neutral"),
    case("exists-i-d", "127.0.10.1", "a@exists.example", "pass"),
    case("macro-l", "127.0.10.2", "alice@users.example", "pass"),
    case("macro-l1r-delim", "127.0.10.3", "john-smith@delim.example",
         "pass"),
    case("macro-o-in-include", "127.0.10.4", "a@macro2.example", "pass"),
    case("macro-ir-v-d2", "127.0.11.1", "a@mail.corp.example", "pass"),
    case("macro-h", "127.0.10.5", "a@hmacro.example", "pass",
         helo="relay.hmacro.example"),
    case("exp-fail", "127.0.13.1", "alice@expfail.example", "fail"),
    case("two-records", "127.0.26.3", "a@two.example", "permerror"),
    case("beside-other-txt", "127.0.24.1", "a@site.example", "pass"),
    case("unknown-mechanism", "127.0.14.1", "a@typo.example", "permerror"),
    case("spf10-is-not-spf1", "127.0.26.4", "a@spf10.example", "none"),
    case("no-record", "127.0.26.5", "a@nospf.example", "none"),
    case("upper-case", "127.0.18.1", "a@upper.example", "pass"),
    case("split-strings", "127.0.16.3", "a@split.example", "pass"),
    case("long-record", "127.0.25.7", "a@long.example", "pass"),
    case("ten-lookups", "127.0.19.1", "a@ok0.limit.example", "pass"),
    case("eleven-lookups", "127.0.19.2", "a@over0.limit.example",
         "permerror"),
    case("two-void-lookups", "127.0.20.2", "a@void2.example", "pass"),
    case("three-void-lookups", "127.0.20.1", "a@void.example", "permerror"),
    # unbound answers a local-data CNAME without the target's records (a
    # recursive server would add them): tern's resolver (libunbound)
    # queries the target itself, dnspython's stub resolver does not, so
    # pyspf sees no record here.
    case("cname", "127.0.21.1", "a@alias.example", "pass", pyspf="none"),
    case("helo-pass", "127.0.23.1", "", "pass", helo="mail.heloa.example"),
    case("helo-fail", "127.0.23.2", "", "fail", helo="mail.heloa.example"),
]


@pytest.fixture(scope="module")
def dns_server():
    server = UnboundServer(RECORDS, probe=("ip4.example", "TXT"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def pyspf_dns(dns_server):
    """dnspython's default resolver (pyspf's) pointed at the unbound."""
    saved = dns.resolver.default_resolver
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = dns_server.port
    dns.resolver.default_resolver = r
    yield
    dns.resolver.default_resolver = saved


@pytest.fixture(scope="module")
def tern(tern_module_instance, dns_server):
    t = tern_module_instance(start=False,
                             extra_config=[f"resolver {dns_server.address}"])
    r = run_tern("user", "add", ALICE, "--password-stdin", conf=t.conf,
                 input=PW + "\n")
    assert r.returncode == 0, r.stderr
    t.start()
    return t


def tern_spf(t, ip, sender, helo, n):
    """tern's SPF result for one message from ip (no _dmarc records
    exist, so DMARC never refuses it)."""
    msg = (f"From: checker@nodmarc.example\r\nTo: {ALICE}\r\n"
           f"Subject: spf-pyspf {n}\r\n"
           f"Message-ID: <spf-pyspf-{n}@nodmarc.example>\r\n\r\n"
           f"Check {n}.\r\n").encode()
    mark = t.log_mark()
    with smtplib.SMTP("127.0.0.1", t.port("smtp"), timeout=30,
                      source_address=(ip, 0)) as s:
        s.ehlo(helo)
        s.sendmail(sender, [ALICE], msg)
    return t.wait_log(r"event=mail-auth spf=(\w+)", since=mark).group(1)


@pytest.mark.parametrize("ip,sender,helo,want,pyspf_want", CASES)
def test_tern_and_pyspf_agree(tern, pyspf_dns, request, ip, sender, helo,
                              want, pyspf_want):
    # query() is strict by default: the RFC 7208 result names.
    theirs, _, _ = spf.query(i=ip, s=sender, h=helo).check()
    ours = tern_spf(tern, ip, sender, helo, request.node.callspec.id)
    assert (ours, theirs) == (want, pyspf_want), (
        f"tern={ours} pyspf={theirs} want={want}")
