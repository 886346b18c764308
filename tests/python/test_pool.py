# test_pool.py: two machines that talk to each other, started blocking and
# on a GLib.MainLoop. Never more than two machines run at once.
#
# SPDX-License-Identifier: MIT

import shutil

import gi

gi.require_version("Qlean", "1.0")
gi.require_version("Gio", "2.0")
from gi.repository import GLib, Gio, Qlean  # noqa: E402

import pytest  # noqa: E402

from conftest import finish, require_machines, run_main_loop  # noqa: E402


def new_pair():
    require_machines()
    if shutil.which("vde_switch") is None:
        pytest.skip("vde_switch is not installed (apt-get install vde2)")
    pool = Qlean.Pool.new()
    assert pool.add("alice", None, None)
    assert pool.add("bob", None, None)
    return pool


def kill_all(pool):
    """Leaves no machine running whatever the test did."""
    for i in range(pool.get_n_items()):
        m = pool.get_item(i)
        if m.get_state() in (Qlean.MachineState.RUNNING, Qlean.MachineState.PAUSED,
                             Qlean.MachineState.STARTING):
            m.kill(None)


def assert_pings(source, target):
    result = source.exec(f"ping -c 2 -W 2 {target}", None)
    assert result.success(), result.get_stdout_text() + result.get_stderr_text()
    assert "2 packets received" in result.get_stdout_text()


def test_pool_blocking():
    pool = new_pair()
    try:
        assert pool.spawn_all(None)
        assert pool.get_n_items() == 2
        alice = pool.get("alice")
        bob = pool.get("bob")
        assert alice.get_state() == bob.get_state() == Qlean.MachineState.RUNNING
        assert alice.exec("hostname", None).get_stdout_text() == "alice\n"
        assert_pings(alice, "bob")

        with pytest.raises(GLib.Error) as raised:
            pool.get("carol")
        error = raised.value
        assert error.matches(Qlean.pool_error_quark(), Qlean.PoolError.NOT_FOUND)
        assert "carol" in error.message and "alice" in error.message

        with pytest.raises(GLib.Error) as raised:
            pool.add("bob", None, None)
        assert raised.value.matches(Qlean.pool_error_quark(), Qlean.PoolError.DUPLICATE_NAME)

        assert pool.shutdown_all(None)
        assert alice.get_state() == bob.get_state() == Qlean.MachineState.STOPPED
    finally:
        kill_all(pool)


def test_pool_async():
    pool = new_pair()
    try:
        assert run_main_loop(lambda done: pool.spawn_all_async(
            None, finish(done, pool.spawn_all_finish)))
        bob = pool.get("bob")
        result = run_main_loop(lambda done: bob.exec_async(
            "ping -c 2 -W 2 alice", None, finish(done, bob.exec_finish)))
        assert result.success() and "2 packets received" in result.get_stdout_text()

        assert run_main_loop(lambda done: pool.shutdown_all_async(
            None, finish(done, pool.shutdown_all_finish)))
        assert bob.get_state() == Qlean.MachineState.STOPPED
        with pytest.raises(GLib.Error) as raised:
            run_main_loop(lambda done: bob.exec_async("true", None, finish(done, bob.exec_finish)))
        assert raised.value.matches(Qlean.machine_error_quark(), Qlean.MachineError.INVALID_STATE)
    finally:
        kill_all(pool)
