# test_blocking.py: one machine, driven with blocking calls.
#
# SPDX-License-Identifier: MIT

import time

import gi

gi.require_version("Qlean", "1.0")
gi.require_version("Gio", "2.0")
from gi.repository import GLib, Gio, Qlean  # noqa: E402

import pytest  # noqa: E402

from conftest import TRANSPORTS, kill_if_running, require_machines, transport_config  # noqa: E402


@pytest.fixture(scope="module", params=TRANSPORTS)
def machine(request):
    """Every test once per transport (conftest.transport_config)."""
    require_machines()
    config, expected = transport_config(request.param)
    m = Qlean.Machine.new(None, config)  # a generated name: test_running checks it
    m.spawn(None)
    assert m.get_guest_transport() == expected
    yield m
    kill_if_running(m)


def launcher(flags=Qlean.GuestProcessFlags.NONE):
    return Qlean.GuestLauncher.new(flags)


def test_running(machine):
    assert machine.get_state() == Qlean.MachineState.RUNNING
    assert machine.props.state == Qlean.MachineState.RUNNING
    assert machine.get_name().startswith("qlean-")
    assert machine.get_pid() > 0


def test_exec_stdout_and_status(machine):
    result = machine.exec("whoami; echo oops >&2; exit 3", None)
    assert result.get_stdout_text() == "root\n"
    assert result.get_stderr().get_data() == b"oops\n"
    assert result.get_exit_status() == 3
    assert not result.get_if_signaled()
    assert not result.success()


def test_exec_signal(machine):
    result = machine.exec("kill -KILL $$", None)
    assert result.get_if_signaled()
    assert result.get_signal() == 9
    assert not result.success()


def test_exec_binary_output(machine):
    result = machine.exec(r"printf '\000\377\n'", None)
    assert result.get_stdout().get_data() == b"\x00\xff\n"


def test_launcher_env_and_cwd(machine):
    lx = launcher()
    lx.setenv("QLEAN_GREETING", "hello world", True)
    lx.set_cwd("/tmp")
    result = lx.run(machine, ["sh", "-c", 'echo "$QLEAN_GREETING"; pwd'], None)
    assert result.get_stdout_text() == "hello world\n/tmp\n"
    assert result.success()


def test_launcher_user(machine):
    lx = launcher()
    lx.set_user("nobody")
    result = lx.run(machine, ["id", "-u"], None)
    assert result.get_stdout_text().strip() == "65534"


def test_launcher_stdin(machine):
    lx = launcher()
    lx.set_stdin(GLib.Bytes.new(b"line one\nline two\n"))
    result = lx.run(machine, ["wc", "-l"], None)
    assert result.get_stdout_text().strip() == "2"


def test_launcher_argv_is_not_shell(machine):
    result = launcher().run(machine, ["printf", "%s|", "a b", "$HOME", "'q'"], None)
    assert result.get_stdout_text() == "a b|$HOME|'q'|"


def test_launcher_timeout(machine):
    lx = launcher()
    lx.set_timeout(500)
    start = time.monotonic()
    with pytest.raises(GLib.Error) as error:
        lx.run(machine, ["sleep", "30"], None)
    assert error.value.matches(Gio.io_error_quark(), Gio.IOErrorEnum.TIMED_OUT)
    assert time.monotonic() - start < 20


def test_command_not_found(machine):
    with pytest.raises(GLib.Error) as error:
        launcher().run(machine, ["/no/such/program"], None)
    assert error.value.matches(Qlean.machine_error_quark(), Qlean.MachineError.COMMAND_NOT_FOUND)
    assert "/no/such/program" in error.value.message


def test_process_live_stdout(machine):
    lx = launcher(Qlean.GuestProcessFlags.STDOUT_PIPE)
    process = lx.spawnv(machine, ["sh", "-c", "echo first; sleep 2; echo second"])
    assert process.get_identifier()
    lines = Gio.DataInputStream.new(process.get_stdout_pipe())
    first, _ = lines.read_line_utf8(None)
    first_at = time.monotonic()
    second, _ = lines.read_line_utf8(None)
    # The first line arrived while the process slept, not with its exit.
    assert (first, second) == ("first", "second")
    assert time.monotonic() - first_at >= 1.5
    assert process.wait_check(None)
    assert process.get_if_exited() and process.get_exit_status() == 0


def test_process_communicate_and_signal(machine):
    # A stdin pipe on both transports (over the agent, its input goes
    # through guest files that a shell loop feeds to the process).
    lx = launcher(Qlean.GuestProcessFlags.STDIN_PIPE | Qlean.GuestProcessFlags.STDOUT_PIPE)
    process = lx.spawnv(machine, ["tr", "a-z", "A-Z"])
    ok, out, err = process.communicate(GLib.Bytes.new(b"shout\n"), None)
    assert ok and out.get_data() == b"SHOUT\n"

    sleeper = launcher().spawnv(machine, ["sleep", "60"])
    sleeper.send_signal(15)
    assert sleeper.wait(None)
    assert sleeper.get_if_signaled() and sleeper.get_term_sig() == 15
    with pytest.raises(GLib.Error):
        sleeper.wait_check(None)


def test_wait_helpers(machine):
    assert machine.wait_for_file("/proc/version", 10000, None)
    with pytest.raises(GLib.Error) as error:
        machine.wait_for_file("/nowhere", 300, None)
    assert error.value.matches(Gio.io_error_quark(), Gio.IOErrorEnum.TIMED_OUT)
    assert "last seen" in error.value.message
    result = machine.wait_until_succeeds(["sh", "-c", "echo ok"], 10000, None)
    assert result.get_stdout_text() == "ok\n"


def test_save_logs(machine, tmp_path):
    machine.exec("echo qlean-python-marker > /dev/console", None)
    assert machine.save_logs(str(tmp_path / "logs"))
    assert "qlean-python-marker" in (tmp_path / "logs" / "console.log").read_text(errors="replace")
    assert "qmp_capabilities" in (tmp_path / "logs" / "transcript.log").read_text()


# Last: it stops the module's machine.
def test_exec_after_shutdown(machine):
    assert machine.shutdown(None)
    assert machine.get_state() == Qlean.MachineState.STOPPED
    with pytest.raises(GLib.Error) as error:
        machine.exec("true", None)
    assert error.value.matches(Qlean.machine_error_quark(), Qlean.MachineError.INVALID_STATE)
    assert error.value.domain == GLib.quark_to_string(Qlean.machine_error_quark())
    with pytest.raises(GLib.Error) as error:
        launcher().run(machine, ["true"], None)
    assert error.value.code == Qlean.MachineError.INVALID_STATE
