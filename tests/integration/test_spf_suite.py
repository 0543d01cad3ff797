"""The SPF conformance suites (openspf.org, RFC 7208 and RFC 4408 editions)
run against tern's SPF code through tests/unit/spf_driver.

The YAML files are read where they are kept ($TERN_SPF_SUITE, by default
../shared/testdata/spf beside the repository); nothing is copied. Each
scenario's zonedata becomes "zone" lines for the driver, the way the
reference driver (pyspf's testspf.py) reads them: SPF (type 99) records are
also served as TXT unless the name has TXT records of its own ("TXT: NONE"
included), TIMEOUT answers a query with a timeout unless records of the
queried type came before it. One pytest case per suite case; a case passes
when tern's result is one of the acceptable ones and, when the suite gives
an explanation, tern's matches it (ignoring letter case: the suite writes
IPv6 %{i} nibbles in upper case, RFC 7208 §7.4 in lower case, and DNS
names are case-insensitive). The driver's explanation default is "DEFAULT",
as in the reference driver.

The driver is $TERN_BUILD_DIR/tests/unit/spf_driver (default <repo>/build).
"""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# ../shared/testdata beside the repository, where it is kept
# (scripts/check finds it and sets TERN_SPF_SUITE).
SUITE_DIR = Path(os.environ.get("TERN_SPF_SUITE")
                 or REPO.parent / "shared" / "testdata" / "spf")
BUILD_DIR = Path(os.environ.get("TERN_BUILD_DIR") or REPO / "build")
DRIVER = BUILD_DIR / "tests" / "unit" / "spf_driver"

# Cases tern cannot pass, with the reason: id -> reason. Kept empty unless
# a case is truly out of reach.
XFAIL = {}


def _bytes(v):
    """A YAML string as the bytes the suite means: "\\xEF" escapes are code
    points below 256 standing for bytes."""
    if isinstance(v, bytes):
        return v
    v = str(v)
    try:
        return v.encode("latin-1")
    except UnicodeEncodeError:
        return v.encode("utf-8")


def _txt(v):
    """TXT/SPF data: a string, or a list of character-strings joined."""
    if isinstance(v, (list, tuple)):
        return b"".join(_bytes(x) for x in v)
    return _bytes(v)


def _esc(b):
    if isinstance(b, str):
        b = _bytes(b)
    out = []
    for c in b:
        if c == 0x5C:
            out.append("\\\\")
        elif c < 0x20 or c >= 0x7F:
            out.append("\\x%02x" % c)
        else:
            out.append(chr(c))
    return "".join(out)


def _unesc(s):
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n == "x" and i + 3 < len(s):
                out.append(int(s[i + 2:i + 4], 16))
                i += 4
                continue
            out += {"t": b"\t", "n": b"\n", "r": b"\r"}.get(
                n, n.encode("latin-1"))
            i += 2
            continue
        out += c.encode("latin-1")
        i += 1
    return out.decode("utf-8", errors="replace")


def zone_lines(zonedata):
    """Driver "zone" lines for one scenario's zonedata."""
    lines = []
    for name, records in (zonedata or {}).items():
        generated = []
        has_txt = False
        for rec in records or []:
            if isinstance(rec, str):  # TIMEOUT
                lines.append(["zone", name, rec.upper(), b""])
                continue
            for rtype, value in rec.items():
                if rtype == "TXT":
                    has_txt = True
                elif rtype == "SPF":
                    generated.append(value)
                if value == "NONE" or rtype == "SPF":
                    continue  # type 99 is never queried (RFC 7208 §3.1)
                if value == "TIMEOUT":
                    lines.append(["zone", name, "TIMEOUT", b""])
                elif rtype == "TXT":
                    lines.append(["zone", name, "TXT", _txt(value)])
                elif rtype == "MX":
                    pref, host = value
                    lines.append(["zone", name, "MX",
                                  _bytes("%s %s" % (pref, host))])
                else:
                    lines.append(["zone", name, rtype, _bytes(value)])
        if not has_txt:
            for value in generated:
                if value != "NONE":
                    lines.append(["zone", name, "TXT", _txt(value)])
    return lines


def _acceptable(result):
    return list(result) if isinstance(result, (list, tuple)) else [result]


def load_cases():
    """(case id, scenario key, test dict) for every suite case, and the
    scenarios by key."""
    cases, scenarios = [], {}
    for path in sorted(SUITE_DIR.glob("*.yml")):
        with open(path, "rb") as f:
            for n, doc in enumerate(yaml.safe_load_all(f)):
                if not doc or "tests" not in doc:
                    continue
                key = "%s#%d" % (path.stem, n)
                scenarios[key] = doc
                for name, test in doc["tests"].items():
                    cases.append(("%s:%s" % (path.stem, name), key, test))
    return cases, scenarios


CASES, SCENARIOS = load_cases()


def _run_driver():
    """Run every scenario through the driver once: {case id: fields}."""
    script = []
    for key, doc in SCENARIOS.items():
        script.append(["reset"])
        script += zone_lines(doc.get("zonedata"))
        for name, test in doc["tests"].items():
            cid = "%s:%s" % (key.split("#")[0], name)
            script.append(["check", cid, "mailfrom", str(test["host"]),
                           _bytes(test.get("helo") or ""),
                           _bytes(test.get("mailfrom") or ""),
                           b""])
    text = "".join("\t".join(_esc(f) for f in line) + "\n"
                   for line in script)
    proc = subprocess.run([str(DRIVER)], input=text.encode("ascii"),
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    results = {}
    for line in proc.stdout.decode("ascii").splitlines():
        fields = [_unesc(f) for f in line.split("\t")]
        results[fields[0]] = fields
    return results


@pytest.fixture(scope="module")
def driver_results(request):
    if not SUITE_DIR.is_dir():
        pytest.fail("SPF suite not found in %s (set TERN_SPF_SUITE)"
                    % SUITE_DIR, pytrace=False)
    if not os.access(DRIVER, os.X_OK):
        pytest.fail("%s not built (set TERN_BUILD_DIR)" % DRIVER,
                    pytrace=False)
    results = _run_driver()
    yield results
    passed = sum(1 for cid, _, test in CASES
                 if _verdict(results, cid, test) is None)
    request.config.pluginmanager.register(
        _Summary("SPF suite: %d/%d passed" % (passed, len(CASES))),
        "tern-spf-suite-summary")


class _Summary:
    """Prints the score in pytest's closing summary (a test module cannot
    declare hooks, but may register a plugin that does)."""

    def __init__(self, line):
        self.line = line

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_line(self.line)


def _verdict(results, cid, test):
    """None when tern passes the case, else what went wrong."""
    fields = results.get(cid)
    if fields is None or len(fields) < 7:
        return "no answer from the driver: %r" % (fields,)
    _, result, explanation, mechanism, problem = fields[:5]
    ok = _acceptable(test["result"])
    if result not in ok:
        return ("result %s, expected %s (mechanism %r, problem %r)"
                % (result, "/".join(ok), mechanism, problem))
    want = test.get("explanation")
    if want is not None and str(want).lower() != explanation.lower():
        return "explanation %r, expected %r" % (explanation, want)
    received, auth = fields[5], fields[6]
    if not received.startswith(result + " ") or \
            not auth.startswith("spf=" + result + " "):
        return "header fields %r / %r" % (received, auth)
    return None


def _params():
    for cid, key, test in CASES:
        marks = []
        if cid in XFAIL:
            marks.append(pytest.mark.xfail(reason=XFAIL[cid], strict=True))
        yield pytest.param(cid, test, id=cid, marks=marks)


@pytest.mark.parametrize("cid,test", list(_params()))
def test_spf_suite_case(driver_results, cid, test):
    problem = _verdict(driver_results, cid, test)
    assert problem is None, "%s (%s): %s" % (
        cid, test.get("spec", "?"), problem)


def test_spf_suite_is_complete():
    """Both suites are there: 203 + 191 cases (SOURCE.txt)."""
    counts = {}
    for cid, _, _ in CASES:
        stem = cid.split(":")[0]
        counts[stem] = counts.get(stem, 0) + 1
    assert counts == {"rfc4408-tests": 191, "rfc7208-tests": 203}, counts
