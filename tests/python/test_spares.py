# test_spares.py: warmed spare machines from Python. At most two
# machines run at once: a spare and the machine that took it.
#
# SPDX-License-Identifier: MIT

import gi

gi.require_version("Qlean", "1.0")
from gi.repository import GLib, Qlean  # noqa: E402

import pytest  # noqa: E402

from conftest import finish, kill_if_running, require_machines, run_main_loop  # noqa: E402


def qemu_children():
    """The pids of the QEMU processes this process started."""
    import glob
    pids = set()
    for path in glob.glob("/proc/self/task/*/children"):
        with open(path) as f:
            for pid in f.read().split():
                try:
                    with open(f"/proc/{pid}/comm") as comm:
                        if comm.read().startswith("qemu-system"):
                            pids.add(int(pid))
                except OSError:
                    pass
    return pids


def test_spare_taken():
    require_machines()
    config = Qlean.MachineConfig.new()
    config.set_spares(1)
    before = qemu_children()
    assert run_main_loop(lambda done: Qlean.Machine.prepare_spares_async(
        None, config, None, finish(done, Qlean.Machine.prepare_spares_finish)))
    spares = qemu_children() - before
    assert len(spares) == 1

    m = Qlean.Machine.new_with_name("py-spare", None, config)
    try:
        assert m.spawn(None)
        # The start ran in the spare's QEMU, under its own name.
        assert m.get_pid() in spares
        assert m.exec("hostname", None).get_stdout_text().strip() == "py-spare"
    finally:
        Qlean.Machine.stop_spares()
        kill_if_running(m)
    assert qemu_children() - before == set()


def test_shape_without_spares():
    require_machines()
    config = Qlean.MachineConfig.new()
    config.set_spares(1)
    config.set_fast_start(False)
    with pytest.raises(GLib.Error) as raised:
        Qlean.Machine.prepare_spares(None, config, None)
    assert raised.value.matches(Qlean.machine_error_quark(), Qlean.MachineError.INVALID_CONFIG)
