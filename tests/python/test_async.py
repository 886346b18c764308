# test_async.py: one machine, driven only with async calls on a GLib.MainLoop.
#
# SPDX-License-Identifier: MIT

import gi

gi.require_version("Qlean", "1.0")
gi.require_version("Gio", "2.0")
from gi.repository import GLib, Gio, Qlean  # noqa: E402

import pytest  # noqa: E402

from conftest import (TRANSPORTS, finish, kill_if_running, require_machines,  # noqa: E402
                      run_main_loop, transport_config)


@pytest.fixture(scope="module", params=TRANSPORTS)
def async_machine(request):
    """Every test once per transport (conftest.transport_config)."""
    require_machines()
    config, expected = transport_config(request.param)
    m = Qlean.Machine.new(None, config)
    assert run_main_loop(lambda done: m.spawn_async(None, finish(done, m.spawn_finish))) is True
    assert m.get_guest_transport() == expected
    yield m
    kill_if_running(m)


def test_spawned(async_machine):
    assert async_machine.get_state() == Qlean.MachineState.RUNNING


def test_exec_async(async_machine):
    m = async_machine
    result = run_main_loop(lambda done: m.exec_async("echo async; exit 4", None,
                                                     finish(done, m.exec_finish)))
    assert result.get_stdout_text() == "async\n"
    assert result.get_exit_status() == 4


def test_concurrent_exec_async(async_machine):
    m = async_machine
    results = {}

    def start(done):
        def on_result(source, res, name):
            results[name] = m.exec_finish(res).get_stdout_text().strip()
            if len(results) == 3:
                done(True)
        for name in ("a", "b", "c"):
            m.exec_async(f"echo {name}", None, on_result, name)

    assert run_main_loop(start)
    assert results == {"a": "a", "b": "b", "c": "c"}


def test_launcher_async(async_machine):
    m = async_machine
    lx = Qlean.GuestLauncher.new(Qlean.GuestProcessFlags.NONE)
    lx.set_user("nobody")
    result = run_main_loop(lambda done: lx.run_async(m, ["id", "-u"], None,
                                                     finish(done, lx.run_finish)))
    assert result.get_stdout_text().strip() == "65534"

    lx = Qlean.GuestLauncher.new(Qlean.GuestProcessFlags.STDOUT_PIPE)
    process = run_main_loop(lambda done: lx.spawnv_async(m, ["echo", "spawned"], None,
                                                         finish(done, lx.spawnv_finish)))
    ok, out, err = run_main_loop(lambda done: process.communicate_async(
        None, None, finish(done, process.communicate_finish)))
    assert ok and out.get_data() == b"spawned\n"


def test_errors_async(async_machine):
    m = async_machine
    lx = Qlean.GuestLauncher.new(Qlean.GuestProcessFlags.NONE)
    with pytest.raises(GLib.Error) as raised:
        run_main_loop(lambda done: lx.run_async(m, ["/no/such/program"], None,
                                                finish(done, lx.run_finish)))
    error = raised.value
    assert error.matches(Qlean.machine_error_quark(), Qlean.MachineError.COMMAND_NOT_FOUND)

    lx.set_timeout(300)
    with pytest.raises(GLib.Error) as raised:
        run_main_loop(lambda done: lx.run_async(m, ["sleep", "30"], None,
                                                finish(done, lx.run_finish)))
    error = raised.value
    assert error.matches(Gio.io_error_quark(), Gio.IOErrorEnum.TIMED_OUT)


def test_wait_async(async_machine):
    m = async_machine
    ok = run_main_loop(lambda done: m.wait_for_file_async("/proc/version", 10000, None,
                                                          finish(done, m.wait_for_file_finish)))
    assert ok is True
    with pytest.raises(GLib.Error) as raised:
        run_main_loop(lambda done: m.wait_for_port_async(4999, 300, None,
                                                         finish(done, m.wait_for_port_finish)))
    error = raised.value
    assert error.matches(Gio.io_error_quark(), Gio.IOErrorEnum.TIMED_OUT)


def test_cancel(async_machine):
    m = async_machine
    cancellable = Gio.Cancellable()
    GLib.timeout_add(200, lambda: cancellable.cancel() or GLib.SOURCE_REMOVE)
    with pytest.raises(GLib.Error) as raised:
        run_main_loop(lambda done: m.wait_for_file_async("/nowhere", 60000, cancellable,
                                                         finish(done, m.wait_for_file_finish)))
    error = raised.value
    assert error.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED)


# Last: it stops the module's machine.
def test_shutdown_async(async_machine):
    m = async_machine
    assert run_main_loop(lambda done: m.shutdown_async(None, finish(done, m.shutdown_finish)))
    assert m.get_state() == Qlean.MachineState.STOPPED
    with pytest.raises(GLib.Error) as raised:
        run_main_loop(lambda done: m.exec_async("true", None, finish(done, m.exec_finish)))
    error = raised.value
    assert error.matches(Qlean.machine_error_quark(), Qlean.MachineError.INVALID_STATE)
