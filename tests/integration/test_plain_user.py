"""tern as a plain user (the demo case): quickstart and serve with no root,
no privilege drop, the default port offset of 10000 replaced by a free one.
When the suite runs as root, the instance runs as `nobody` via setpriv, so
CI covers this path too."""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import (DOMAIN, HOSTNAME, PORTS, ROLES, TERN_BIN, cert_subject_cn,
                      children_of, free_port_offset, peer_cert_der,
                      proc_status, tls_open, wait_until)


def _as_plain_user():
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def plain_instance():
    root = tempfile.mkdtemp(prefix="tern-plain-")
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
    offset = free_port_offset()
    prefix = _as_plain_user()
    demo = os.path.join(root, "demo")
    qs = subprocess.run(prefix + [TERN_BIN, "quickstart", "--dir", demo,
                                  "--domain", DOMAIN, "--port-offset",
                                  str(offset)],
                        capture_output=True, text=True, timeout=60)
    assert qs.returncode == 0, qs.stderr
    log = open(os.path.join(root, "serve.log"), "wb")
    proc = subprocess.Popen(prefix + [TERN_BIN, "-c",
                                      os.path.join(demo, "tern.conf"),
                                      "serve"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True)
    try:
        yield proc, offset, os.path.join(root, "serve.log")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _role_pids(parent):
    names = {}
    for pid in children_of(parent):
        try:
            with open(f"/proc/{pid}/comm") as f:
                names[f.read().strip()] = pid
        except OSError:
            pass
    return names


def test_plain_user_demo_answers_tls_with_five_processes(plain_instance):
    proc, offset, log_path = plain_instance
    # setpriv execs tern, so the parent keeps proc.pid. A child between
    # fork and exec still carries the parent's name: wait for all four.
    want = {f"tern: {r}" for r in ROLES}
    roles = wait_until(
        lambda: (lambda n: n if set(n) == want else None)(_role_pids(proc.pid)),
        15, what="four named roles")
    with open(f"/proc/{proc.pid}/comm") as f:
        assert f.read().strip() == "tern: parent"

    uid = os.getuid() if os.geteuid() != 0 else pwd.getpwnam("nobody").pw_uid
    for pid in list(roles.values()) + [proc.pid]:
        uids = proc_status(pid)["Uid"]
        assert all(int(u) == uid for u in uids), (pid, uids)

    for service in ("imaps", "submissions"):
        port = offset + PORTS[service]
        conn = wait_until(lambda: _try_tls(port), 10,
                          what=f"TLS on {service}")
        try:
            assert cert_subject_cn(peer_cert_der(conn)) == HOSTNAME
        finally:
            conn.close()

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    with open(log_path) as f:
        assert "event=stopped" in f.read()


def _try_tls(port):
    try:
        return tls_open(port, timeout=2)
    except OSError:
        time.sleep(0.1)
        return None
