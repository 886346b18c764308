# test_snapshot.py: snapshots, restores and clones. At most two machines
# run at once: the module's machine and its clone.
#
# SPDX-License-Identifier: MIT

import gi

gi.require_version("Qlean", "1.0")
gi.require_version("Gio", "2.0")
from gi.repository import GLib, Gio, Qlean  # noqa: E402

import pytest  # noqa: E402

from conftest import finish, kill_if_running, require_machines, run_main_loop  # noqa: E402


@pytest.fixture(scope="module")
def original():
    require_machines()
    m = Qlean.Machine.new_with_name("py-original", None, None)
    m.spawn(None)
    yield m
    kill_if_running(m)


def test_snapshot_restore(original):
    m = original
    assert m.snapshot("clean", None)
    assert "clean" in m.list_snapshots()
    assert m.write("/root/after-snapshot", GLib.Bytes.new(b"later\n"), None)
    sleeper = m.exec("sleep 600 </dev/null >/dev/null 2>&1 & echo $!", None).get_stdout_text()

    assert run_main_loop(lambda done: m.restore_async("clean", None, finish(done, m.restore_finish)))
    assert m.get_state() == Qlean.MachineState.RUNNING
    assert not m.exists("/root/after-snapshot", None)
    assert not m.exists(f"/proc/{sleeper.strip()}", None)

    with pytest.raises(GLib.Error) as raised:
        m.restore("never-taken", None)
    assert raised.value.matches(Gio.io_error_quark(), Gio.IOErrorEnum.NOT_FOUND)
    assert "never-taken" in raised.value.message

    assert m.delete_snapshot("clean")
    assert "clean" not in m.list_snapshots()


def test_clone(original):
    assert original.write("/root/inherited", GLib.Bytes.new(b"from the original\n"), None)
    clone = original.clone("py-clone", None)
    try:
        assert clone.get_name() == "py-clone"
        assert clone.get_state() == Qlean.MachineState.RUNNING
        assert original.get_state() == Qlean.MachineState.RUNNING
        assert clone.exec("hostname", None).get_stdout_text() == "py-clone\n"
        assert original.exec("hostname", None).get_stdout_text() == "py-original\n"
        assert clone.read_to_string("/root/inherited", None) == "from the original\n"

        assert clone.write("/root/only-clone", GLib.Bytes.new(b"b"), None)
        assert not original.exists("/root/only-clone", None)
    finally:
        if clone.get_state() == Qlean.MachineState.RUNNING:
            clone.kill(None)
