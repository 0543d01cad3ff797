"""Privilege separation as seen from /proc: started as root, each role runs
as its own tern-* user with no other groups and no_new_privs, front is
chrooted to DATA/empty, and only parent keeps root."""

import os
import signal

import pytest

from conftest import ROLES, proc_status, running_as_root, user_ids, wait_until

pytestmark = pytest.mark.skipif(
    not running_as_root(),
    reason="privilege separation only happens when tern starts as root "
           "(these tests run as root in CI)")


@pytest.fixture(scope="module")
def tern(tern_module_instance):
    return tern_module_instance()


@pytest.fixture(scope="module")
def procs(tern):
    p = tern.processes()
    assert sorted(p) == sorted(("parent",) + ROLES), p
    return p


@pytest.mark.parametrize("role", ROLES)
def test_role_runs_as_its_user(procs, role):
    uid, gid = user_ids(f"tern-{role}")
    assert uid != 0 and gid != 0
    st = proc_status(procs[role])
    # real, effective, saved, filesystem
    assert st["Uid"] == [str(uid)] * 4, st["Uid"]
    assert st["Gid"] == [str(gid)] * 4, st["Gid"]


@pytest.mark.parametrize("role", ROLES)
def test_role_has_only_its_own_group(procs, role):
    _, gid = user_ids(f"tern-{role}")
    groups = proc_status(procs[role]).get("Groups", [])
    assert groups in ([str(gid)], []), groups


def test_roles_have_distinct_users(procs):
    uids = {proc_status(procs[r])["Uid"][0] for r in ROLES}
    assert len(uids) == len(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_role_has_no_new_privs(procs, role):
    assert proc_status(procs[role])["NoNewPrivs"] == ["1"]


@pytest.mark.parametrize("role", ROLES)
def test_role_has_no_capabilities(procs, role):
    st = proc_status(procs[role])
    for field in ("CapEff", "CapPrm"):
        assert int(st[field][0], 16) == 0, (field, st[field])


def test_front_is_chrooted_to_empty(tern, procs):
    root = os.readlink(f"/proc/{procs['front']}/root")
    assert root == os.path.realpath(tern.data / "empty")
    assert os.listdir(tern.data / "empty") == []


@pytest.mark.parametrize("role", ["lookup", "queue", "store"])
def test_other_roles_are_not_chrooted_to_empty(tern, procs, role):
    # Only front is confined to the empty directory; the others need data/.
    assert os.readlink(f"/proc/{procs[role]}/root") != \
        os.path.realpath(tern.data / "empty")


def test_parent_keeps_root(procs):
    st = proc_status(procs["parent"])
    assert st["Uid"] == ["0"] * 4
    assert st["Gid"] == ["0"] * 4


def test_data_dirs_belong_to_their_roles(tern, procs):
    for sub, role in (("queue", "queue"), ("mail", "store"),
                      ("dkim", "lookup")):
        st = os.stat(tern.data / sub)
        assert (st.st_uid, st.st_gid) == user_ids(f"tern-{role}"), sub
        assert st.st_mode & 0o077 == 0, (sub, oct(st.st_mode))


def test_password_databases_belong_to_lookup(tern, procs):
    # Only lookup reads the directory and state.db (bans): 0600, its own.
    lookup = user_ids("tern-lookup")
    for name in ("directory.db", "state.db"):
        st = os.stat(tern.data / name)
        assert (st.st_uid, st.st_gid) == lookup, name
        assert st.st_mode & 0o077 == 0, (name, oct(st.st_mode))
    # lookup may create files beside them, but, the directory being
    # sticky, may not rename or remove what other roles own.
    st = os.stat(tern.data)
    assert st.st_uid == 0 and st.st_gid == lookup[1]
    assert st.st_mode & 0o7777 == 0o1775, oct(st.st_mode)


def test_restarted_front_drops_privileges_again(tern_instance):
    t = tern_instance()
    old = t.role_pid("front")
    os.kill(old, signal.SIGKILL)
    new = wait_until(lambda: (p := t.role_pid("front")) and p != old and p,
                     5, what="a new front")
    t.wait_log(rf"event=child-ready role=front pid={new}\b", timeout=5)
    uid, gid = user_ids("tern-front")
    st = proc_status(new)
    assert st["Uid"] == [str(uid)] * 4
    assert st["Gid"] == [str(gid)] * 4
    assert st["NoNewPrivs"] == ["1"]
    assert os.readlink(f"/proc/{new}/root") == \
        os.path.realpath(t.data / "empty")
