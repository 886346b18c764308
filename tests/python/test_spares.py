# test_spares.py: warmed spare machines from Python. At most four
# machines run at once: a pool of two that took spares, and the two
# spares started behind them.
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


def test_pool_takes_spares():
    require_machines()
    import shutil
    if shutil.which("vde_switch") is None:
        pytest.skip("vde_switch is not installed (apt-get install vde2)")
    config = Qlean.MachineConfig.new()
    config.set_spares(2)
    pool = Qlean.Pool.new()
    assert pool.add("py-alice", None, config)
    assert pool.add("py-bob", None, config)
    before = qemu_children()
    try:
        assert run_main_loop(lambda done: pool.prepare_spares_async(
            None, finish(done, pool.prepare_spares_finish)))
        spares = qemu_children() - before
        assert len(spares) == 2
        assert pool.spawn_all(None)
        alice = pool.get("py-alice")
        bob = pool.get("py-bob")
        # Both run in a spare's QEMU, on the pool's network.
        assert {alice.get_pid(), bob.get_pid()} == spares
        result = bob.exec("ping -c 1 -W 5 py-alice", None)
        assert result.success(), result.get_stdout_text() + result.get_stderr_text()
    finally:
        Qlean.Machine.stop_spares()
        for i in range(pool.get_n_items()):
            kill_if_running(pool.get_item(i))
    assert qemu_children() - before == set()
