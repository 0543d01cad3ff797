"""Shared helpers for the integration tests: a free port offset, a real
tern instance (quickstart + serve) that is always cleaned up, log reading,
and small line-oriented and TLS clients.

The binary is $TERN_BIN, by default <repo>/build/tern. Standard library
only; every wait has a deadline."""

import hashlib
import os
import pwd
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TERN_BIN = os.environ.get("TERN_BIN") or str(REPO / "build" / "tern")

DOMAIN = "example.test"
HOSTNAME = "mail." + DOMAIN

# Contract port numbers before the offset.
PORTS = {
    "lmtp": 24,
    "smtp": 25,
    "pop3": 110,
    "imap": 143,
    "submissions": 465,
    "submission": 587,
    "imaps": 993,
    "pop3s": 995,
    "managesieve": 4190,
    "http": 8080,
}
IMPLICIT_TLS = ("submissions", "imaps", "pop3s")
ROLES = ("front", "lookup", "queue", "store")

READY_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


# ---------------------------------------------------------------- binary


@pytest.fixture(scope="session", autouse=True)
def _tern_binary():
    if not os.access(TERN_BIN, os.X_OK):
        pytest.fail(f"tern binary {TERN_BIN} not found or not executable "
                    f"(set TERN_BIN)", pytrace=False)


def run_tern(*args, conf=None, timeout=30, input=None, **kw):
    """Run the tern command; returns CompletedProcess with text output."""
    cmd = [TERN_BIN]
    if conf is not None:
        cmd += ["-c", str(conf)]
    cmd += [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True,
                          errors="replace", timeout=timeout, input=input,
                          **kw)


# ---------------------------------------------------------------- DNS

UNBOUND = "/usr/sbin/unbound"


def free_udp_port(attempts=500):
    """A port for a DNS server, which binds it for UDP and TCP: free for
    both, outside the kernel's ephemeral range (a port the kernel handed
    out for UDP could be a client's TCP port a moment later, and unbound
    would then exit at start), and not handed out before."""
    rng = random.Random()
    for _ in range(attempts):
        lo, hi = rng.choice(_offset_ranges())
        port = rng.randint(lo, hi)
        if port in _handed_out or not _port_free(port):
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port for a DNS server found")


def txt_strings(value):
    """A TXT value as quoted character-strings of at most 255 bytes."""
    parts = [value[i:i + 255] for i in range(0, len(value), 255)]
    return " ".join(f'"{p}"' for p in parts)


def dkim_rsa_key():
    """A fresh RSA-2048 key: (private key PEM, base64 public key for p=)."""
    import base64
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(pub).decode()


def dkim_records(t, domain=DOMAIN):
    """The DNS records of an instance's DKIM keys for domain (those
    quickstart made): name → TXT value (bytes)."""
    import base64
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    records = {}
    for path in sorted((t.data / "dkim" / domain).glob("*.key")):
        key = serialization.load_pem_private_key(path.read_bytes(), None)
        pub = key.public_key()
        if isinstance(pub, rsa.RSAPublicKey):
            der = pub.public_bytes(
                serialization.Encoding.DER,
                serialization.PublicFormat.SubjectPublicKeyInfo)
            value = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
        else:
            raw = pub.public_bytes(serialization.Encoding.Raw,
                                   serialization.PublicFormat.Raw)
            value = "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()
        records[f"{path.stem}._domainkey.{domain}."] = value.encode()
    return records


def as_sent(raw, also=()):
    """A delivered message (Maildir: LF line ends) as it was sent, CRLF,
    without the fields local delivery put on top (Return-Path,
    Delivered-To) and the header fields named in also."""
    drop = {b"return-path", b"delivered-to", *(a.lower() for a in also)}
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    while lines and (lines[0].split(b":")[0].lower() in drop or
                     lines[0].startswith((b"\t", b" "))):
        lines.pop(0)
    return b"\r\n".join(lines)


def dkim_signatures_verify(message, records):
    """The d= of each DKIM-Signature of message, after checking that every
    one verifies with dkimpy against records (name → TXT value)."""
    import re as _re
    import dkim

    def dnsfunc(name, timeout=5):
        return records.get(name.decode() if isinstance(name, bytes)
                           else name, b"")
    d = dkim.DKIM(message)
    sigs = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
    for i, sig in enumerate(sigs):
        assert d.verify(idx=i, dnsfunc=dnsfunc), (i, sig)
    return [_re.search(rb"\bd=([^;\s]+)", s).group(1).decode()
            for s in sigs]


class UnboundServer:
    """A real unbound on 127.0.0.1 answering only from local-data (the
    zones are "static": any other name in them is NXDOMAIN). Use *.example
    names: unbound serves "test." itself as a default local zone."""

    def __init__(self, records, zones=("example.",), probe=None):
        self.dir = tempfile.mkdtemp(prefix="tern-dns-")
        self.port = free_udp_port()
        conf = "\n".join([
            "server:",
            "\tverbosity: 1",
            "\tinterface: 127.0.0.1",
            f"\tport: {self.port}",
            "\tdo-ip6: no",
            "\tdo-not-query-localhost: no",
            '\tchroot: ""',
            '\tusername: ""',
            f'\tdirectory: "{self.dir}"',
            f'\tpidfile: "{self.dir}/unbound.pid"',
            '\tlogfile: ""',
            "\tuse-syslog: no",
            "\tnum-threads: 1",
            '\tmodule-config: "iterator"',
        ] + [f'\tlocal-zone: "{z}" static' for z in zones]
          + [f"\tlocal-data: '{r}'" for r in records] + [
            "remote-control:",
            "\tcontrol-enable: no",
            "",
        ])
        path = os.path.join(self.dir, "unbound.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(
            [UNBOUND, "-d", "-c", path], stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "log"), "w"))
        name, rtype = probe or records[0].split()[:2]

        def answers():
            r = subprocess.run(["drill", "-p", str(self.port), name, rtype,
                                "@127.0.0.1"], capture_output=True,
                               text=True)
            return "NOERROR" in r.stdout and "ANSWER: 0" not in r.stdout
        wait_until(answers, 10, what="unbound answering")

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


LDNS_KEYGEN = "/usr/bin/ldns-keygen"
LDNS_SIGNZONE = "/usr/bin/ldns-signzone"


class SignedZoneServer:
    """A DNSSEC-signed zone on a real unbound on 127.0.0.1: the zone file
    (SOA, NS and the given records) is signed with ldns-signzone under a
    new KSK and ZSK (ECDSAP256SHA256, NSEC) and served by unbound as an
    auth-zone for its own iterator, which validates it against the KSK's
    DS: answers carry RRSIGs (for a validating client) and the AD flag.
    Every other name is answered from local_data (unsigned, insecure) or
    is NXDOMAIN, so nothing ever leaves the loopback.

    records: zone-file lines, names absolute ("mx.dane.example. A …") or
    relative to the zone. bogus: owner names (absolute) whose records
    (not their RRSIG or NSEC) are altered after signing, so that they
    validate as bogus. trust_anchor: the DS file, to give a resolver as its
    trust anchor (tern's dns_trust_anchor). validate=False: unbound
    passes the zone's answers on without validating them (bogus ones
    too), for a client that must validate by itself."""

    def __init__(self, zone, records, local_data=(), bogus=(),
                 validate=True):
        self.zone = zone.rstrip(".") + "."
        self.dir = tempfile.mkdtemp(prefix="tern-dnssec-")
        # The roles of a tern run as root read the trust anchor as their
        # own user.
        os.chmod(self.dir, 0o755)
        self.port = free_udp_port()
        zone_path = os.path.join(self.dir, "zone")
        with open(zone_path, "w") as f:
            f.write("\n".join([
                f"$ORIGIN {self.zone}",
                "$TTL 300",
                f"@ IN SOA ns.{self.zone} hostmaster.{self.zone} "
                "1 3600 600 86400 300",
                f"@ IN NS ns.{self.zone}",
                "ns IN A 127.0.0.1",
                *records, ""]))

        def run(*cmd):
            r = subprocess.run(cmd, cwd=self.dir, capture_output=True,
                               text=True, timeout=60)
            assert r.returncode == 0, f"{cmd}: {r.stderr}"
            return r.stdout.strip()
        ksk = run(LDNS_KEYGEN, "-a", "ECDSAP256SHA256", "-k", self.zone)
        zsk = run(LDNS_KEYGEN, "-a", "ECDSAP256SHA256", self.zone)
        run(LDNS_SIGNZONE, "-f", "zone.signed", "zone", zsk, ksk)
        signed = os.path.join(self.dir, "zone.signed")
        if bogus:
            self._spoil(signed, {b.rstrip(".") + "." for b in bogus})
        self.trust_anchor = os.path.join(self.dir, "trust-anchor")
        shutil.copy(os.path.join(self.dir, ksk + ".ds"), self.trust_anchor)
        os.chmod(self.trust_anchor, 0o644)
        with open(self.trust_anchor) as f:
            self.ds = f.read().strip()
        conf = "\n".join([
            "server:",
            "\tverbosity: 1",
            "\tinterface: 127.0.0.1",
            f"\tport: {self.port}",
            "\tdo-ip6: no",
            "\tdo-not-query-localhost: no",
            '\tchroot: ""',
            '\tusername: ""',
            f'\tdirectory: "{self.dir}"',
            f'\tpidfile: "{self.dir}/unbound.pid"',
            '\tlogfile: ""',
            "\tuse-syslog: no",
            "\tnum-threads: 1",
        ] + ([
            '\tmodule-config: "validator iterator"',
            f'\ttrust-anchor-file: "{self.trust_anchor}"',
        ] if validate else ['\tmodule-config: "iterator"']) + [
            # Nothing recursive: every name outside the zone is local
            # data or NXDOMAIN; the zone itself goes to the auth-zone.
            '\tlocal-zone: "." static',
            f'\tlocal-zone: "{self.zone}" transparent',
        ] + [f"\tlocal-data: '{r}'" for r in local_data] + [
            "auth-zone:",
            f'\tname: "{self.zone}"',
            f'\tzonefile: "{signed}"',
            "\tfor-upstream: yes",
            "\tfor-downstream: no",
            "\tfallback-enabled: no",
            "remote-control:",
            "\tcontrol-enable: no",
            "",
        ])
        path = os.path.join(self.dir, "unbound.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(
            [UNBOUND, "-d", "-c", path], stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "log"), "w"))

        def answers():
            r = subprocess.run(["drill", "-D", "-p", str(self.port),
                                self.zone, "SOA", "@127.0.0.1"],
                               capture_output=True, text=True)
            if not validate:
                return "NOERROR" in r.stdout and "RRSIG" in r.stdout
            return "NOERROR" in r.stdout and re.search(
                r"^;; flags: .*\bad\b", r.stdout, re.M) is not None
        try:
            wait_until(answers, 30, what="unbound answering (validated)")
        except AssertionError as e:
            # What unbound said is the only clue to a failure here.
            with open(os.path.join(self.dir, "log")) as f:
                log = f.read()[-3000:]
            drill = subprocess.run(["drill", "-D", "-p", str(self.port),
                                    self.zone, "SOA", "@127.0.0.1"],
                                   capture_output=True, text=True)
            raise AssertionError(f"{e}\nunbound log:\n{log}\ndrill:\n"
                                 f"{drill.stdout}{drill.stderr}") from None

    @staticmethod
    def _spoil(path, owners):
        out = []
        with open(path) as f:
            for line in f:
                fields = line.split()
                if (len(fields) >= 5 and fields[0] in owners
                        and fields[3] not in ("RRSIG", "NSEC", "NSEC3")):
                    # The last character of the RDATA, changed.
                    line = line.rstrip()
                    last = line[-1]
                    line = line[:-1] + ("1" if last != "1" else "2") + "\n"
                out.append(line)
        with open(path, "w") as f:
            f.writelines(out)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- ports

_handed_out = set()


def _port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _offset_ranges():
    """Offsets whose ports all stay out of the kernel's ephemeral range,
    so that no client socket can be sitting on one of them."""
    try:
        lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range")
                     .read_text().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    top = max(PORTS.values())
    ranges = []
    if lo - top - 1 >= 11000:
        ranges.append((11000, lo - top - 1))
    if hi + 1 <= 65535 - top:
        ranges.append((hi + 1, 65535 - top))
    if not ranges:
        ranges.append((20000, 65535 - top))
    return ranges


def free_port_offset(attempts=500):
    """An offset N such that N + every contract port is free on 127.0.0.1
    (checked by binding) and not handed out before in this session."""
    ranges = _offset_ranges()
    rng = random.Random()
    for _ in range(attempts):
        lo, hi = rng.choice(ranges)
        n = rng.randint(lo, hi)
        ports = {n + p for p in PORTS.values()}
        if ports & _handed_out:
            continue
        if all(_port_free(p) for p in ports):
            _handed_out.update(ports)
            return n
    raise RuntimeError("no free port offset found")


# ---------------------------------------------------------------- /proc


def proc_stat(pid):
    """(comm, ppid, pgrp) of pid, or None if it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    lpar, rpar = data.index("("), data.rindex(")")
    rest = data[rpar + 2:].split()
    return data[lpar + 1:rpar], int(rest[1]), int(rest[2])


def proc_cmdline(pid):
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.split(b"\0")[0].decode(errors="replace")


def proc_status(pid):
    """/proc/PID/status as a dict of field -> list of words."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.split()
    return out


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children_of(ppid):
    out = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st is not None and st[1] == ppid:
            out.append(pid)
    return out


def group_members(pgrp):
    out = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st is not None and st[2] == pgrp:
            out.append(pid)
    return out


def pid_alive(pid):
    st = proc_stat(pid)
    if st is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until it returns something true; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what}")
        time.sleep(interval)


# ---------------------------------------------------------------- clients


class Conn:
    """A line-oriented client over a plain or TLS socket."""

    def __init__(self, sock, timeout=5.0):
        self.sock = sock
        self.timeout = timeout
        self.buf = b""
        sock.settimeout(timeout)

    @classmethod
    def open(cls, port, host="127.0.0.1", timeout=5.0):
        return cls(socket.create_connection((host, port), timeout=timeout),
                   timeout)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by server; have "
                           f"{self.buf!r}")
        self.buf += chunk

    def readline(self, timeout=None):
        """One line without its CRLF (str). EOFError on close."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"no full line; have {self.buf!r}")
            self._fill(left)
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode(errors="replace")

    def smtp_reply(self, timeout=None):
        """A whole (multi-line) SMTP reply as a list of lines."""
        lines = [self.readline(timeout)]
        while len(lines[-1]) >= 4 and lines[-1][3] == "-":
            lines.append(self.readline(timeout))
        return lines

    def nothing_within(self, seconds):
        """True if the server sends no byte for that long."""
        if self.buf:
            return False
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        finally:
            self.sock.settimeout(self.timeout)
        self.buf += chunk
        return False

    def closed_within(self, seconds):
        """True if the server closes (EOF or reset) within seconds without
        sending anything; the bytes received are kept in self.buf."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def starttls(self, server_hostname=HOSTNAME):
        assert not self.buf, f"bytes after the STARTTLS reply: {self.buf!r}"
        self.sock = client_tls_context().wrap_socket(
            self.sock, server_hostname=server_hostname)
        self.sock.settimeout(self.timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def client_tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_open(port, timeout=5.0, server_hostname=HOSTNAME):
    """A Conn over implicit TLS (handshake done)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s = client_tls_context().wrap_socket(raw,
                                             server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise
    return Conn(s, timeout)


def peer_cert_der(conn_or_sock):
    sock = conn_or_sock.sock if isinstance(conn_or_sock, Conn) else conn_or_sock
    return sock.getpeercert(binary_form=True)


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


def cert_file_fingerprint(path):
    pem = Path(path).read_text()
    return fingerprint(ssl.PEM_cert_to_DER_cert(pem))


def cert_subject_cn(der):
    """The subject CN of a DER certificate, read by the openssl CLI."""
    out = subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-noout", "-subject",
         "-nameopt", "RFC2253"],
        input=der, capture_output=True, timeout=10, check=True).stdout
    m = re.search(rb"CN=([^,\n]+)", out)
    assert m, f"no CN in {out!r}"
    return m.group(1).decode()


def make_selfsigned(cert_path, key_path, cn=HOSTNAME, days=2):
    """A new P-256 self-signed pair, written atomically (rename)."""
    cert_path, key_path = Path(cert_path), Path(key_path)
    tmp_c = cert_path.with_name(cert_path.name + ".new")
    tmp_k = key_path.with_name(key_path.name + ".new")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={cn}",
         "-addext", f"subjectAltName=DNS:{cn}", "-days", str(days),
         "-keyout", str(tmp_k), "-out", str(tmp_c)],
        capture_output=True, timeout=30, check=True)
    os.rename(tmp_k, key_path)
    os.rename(tmp_c, cert_path)


# ---------------------------------------------------------------- instance

_live = []  # instances running now, for failure reports


def _insert_in_listener(text, service, lines):
    pat = re.compile(r"^listener %s \{\n" % re.escape(service), re.M)
    m = pat.search(text)
    assert m, f"no listener {service} block in tern.conf"
    add = "".join(f"\t{line}\n" for line in lines)
    return text[:m.end()] + add + text[m.end():]


class Tern:
    """One tern instance in its own directory."""

    def __init__(self, root, offset, extra_config=(), listener_config=None,
                 quickstart_args=()):
        self.root = Path(root)
        self.offset = offset
        self.conf = self.root / "tern.conf"
        self.data = self.root / "data"
        self.log_path = self.root / "serve.log"
        self.proc = None
        self._logf = None
        qs = run_tern("quickstart", "--dir", self.root, "--domain", DOMAIN,
                      "--port-offset", offset, *quickstart_args)
        assert qs.returncode == 0, (
            f"quickstart failed ({qs.returncode}): {qs.stderr}")
        self.quickstart_output = qs.stdout
        text = self.conf.read_text()
        for service, lines in (listener_config or {}).items():
            text = _insert_in_listener(text, service, lines)
        if extra_config:
            text += "\n" + "".join(f"{line}\n" for line in extra_config)
        self.conf.write_text(text)

    # -- facts
    def port(self, service):
        return self.offset + PORTS[service]

    @property
    def cert_path(self):
        return self.data / "tls" / f"{HOSTNAME}.crt"

    @property
    def key_path(self):
        return self.data / "tls" / f"{HOSTNAME}.key"

    @property
    def pid(self):
        return self.proc.pid

    # -- running
    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [TERN_BIN, "-c", str(self.conf), "serve"],
            stdin=subprocess.DEVNULL, stdout=self._logf, stderr=self._logf,
            start_new_session=True)
        _live.append(self)
        if wait:
            self.wait_ready()
        return self

    def serve_once(self, timeout=15):
        """Run `serve` expecting it to fail at start: (returncode, stderr)."""
        try:
            r = run_tern("serve", conf=self.conf, timeout=timeout,
                         start_new_session=True)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"serve did not exit within {timeout}s")
        return r.returncode, r.stderr

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Every role reported ready, front listens on every listener and
        has its certificate, and every port accepts a connection (each
        probe is waited for until front has logged its end, so that no
        probe is still counted against a limit when the test starts)."""
        deadline = time.monotonic() + timeout
        nlisteners = len(re.findall(r"^listener \w+ \{", self.conf.read_text(),
                                    re.M))

        def left():
            return max(0.1, deadline - time.monotonic())

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"serve exited with {self.proc.returncode} at start")
            log = self.log()
            return (all(f"event=child-ready role={r} " in log for r in ROLES)
                    and log.count(" event=listening ") >= nlisteners
                    and "event=certificate-installed" in log)

        try:
            wait_until(ready, timeout, what="all roles ready")
            before = self.log().count(" event=disconnect ")
            for port in (self.port(s) for s in PORTS):
                wait_until(lambda: self._connects(port), left(),
                           what=f"port {port} to accept")
            wait_until(lambda: self.log().count(" event=disconnect ")
                       >= before + len(PORTS), left(),
                       what="front to finish the probe connections")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- log ---\n{self.log_tail()}")

    @staticmethod
    def _connects(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def processes(self):
        """{"parent": pid, "front": pid, …} of the live processes."""
        out = {"parent": self.proc.pid}
        for pid in children_of(self.proc.pid):
            name = proc_cmdline(pid)
            role = name[len("tern: "):] if name.startswith("tern: ") else ""
            # (a child forked but not yet re-executed still says "parent")
            if role in ROLES and pid_alive(pid):
                out[role] = pid
        return out

    def role_pid(self, role):
        return self.processes().get(role)

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"tern did not exit within {timeout}s:\n"
                                 f"{self.log_tail()}")

    def stop(self):
        """SIGTERM, wait, then kill whatever is left of the group."""
        if self.proc is None:
            return
        pgrp = self.proc.pid
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=STOP_TIMEOUT)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None or group_members(pgrp):
            try:
                os.killpg(pgrp, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self._logf is not None:
            self._logf.close()
            self._logf = None
        if self in _live:
            _live.remove(self)

    # -- log
    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_mark(self):
        """A position: log_since(mark) is what was logged after it."""
        return len(self.log())

    def log_since(self, mark):
        return self.log()[mark:]

    def log_tail(self, n=60):
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, pattern, timeout=5.0, since=0):
        """The first match of the regex in the log after position since."""
        rx = re.compile(pattern)
        try:
            return wait_until(lambda: rx.search(self.log()[since:]), timeout,
                              what=f"log line /{pattern}/")
        except AssertionError as e:
            rc = self.proc.poll() if self.proc is not None else None
            state = "" if rc is None else f" (serve exited with {rc})"
            raise AssertionError(f"{e}{state}\n--- log ---\n"
                                 f"{self.log_tail()}")


class TernFactory:
    def __init__(self):
        self.instances = []
        self.dirs = []

    def __call__(self, start=True, **kw):
        root = tempfile.mkdtemp(prefix="tern-it-")
        # As root the roles run as tern-* users: let them reach data/.
        os.chmod(root, 0o755)
        self.dirs.append(root)
        t = Tern(root, free_port_offset(), **kw)
        self.instances.append(t)
        if start:
            t.start()
        return t

    def close(self):
        for t in self.instances:
            t.stop()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tern_instance():
    """Factory: tern_instance(extra_config=[…], listener_config={svc: […]},
    start=True) → a running Tern; stopped and removed at teardown."""
    f = TernFactory()
    yield f
    f.close()


@pytest.fixture(scope="module")
def tern_module_instance():
    """The same factory, for one instance shared by a module's tests."""
    f = TernFactory()
    yield f
    f.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _live:
        for t in list(_live):
            rep.sections.append((f"tern log {t.root} (offset {t.offset})",
                                 t.log_tail(80)))


# ---------------------------------------------------------------- misc


def running_as_root():
    return os.geteuid() == 0


def user_ids(name):
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid
