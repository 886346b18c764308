# test_types.py: the typelib itself; nothing boots here.
#
# SPDX-License-Identifier: MIT

import gi

gi.require_version("Qlean", "1.0")
from gi.repository import GLib, Gio, Qlean  # noqa: E402

import pytest  # noqa: E402


def test_version():
    assert Qlean.MAJOR_VERSION >= 0
    assert isinstance(Qlean.VERSION_S, str) and Qlean.VERSION_S.count(".") == 2


def test_config_properties():
    config = Qlean.MachineConfig.new()
    config.set_cores(2)
    config.set_memory_mib(384)
    assert config.get_cores() == 2
    assert config.props.memory_mib == 384
    copy = config.copy()
    assert copy.get_cores() == 2


def test_error_domains():
    assert GLib.quark_to_string(Qlean.machine_error_quark()) == "qlean-machine-error-quark"
    assert Qlean.MachineError.INVALID_STATE != Qlean.MachineError.COMMAND_NOT_FOUND


def test_exec_result():
    result = Qlean.ExecResult.new(3, 0, GLib.Bytes.new(b"out"), GLib.Bytes.new(b"err"), False, False)
    assert result.get_exit_status() == 3
    assert not result.success()
    assert result.get_stdout().get_data() == b"out"
    assert result.get_stderr_text() == "err"
    with pytest.raises(GLib.Error):
        result.check()


def test_invalid_state_without_boot():
    m = Qlean.Machine.new(None, None)
    assert m.get_state() == Qlean.MachineState.CREATED
    with pytest.raises(GLib.Error) as error:
        m.exec("true", None)
    assert error.value.matches(Qlean.machine_error_quark(), Qlean.MachineError.INVALID_STATE)
