# qlean_pytest.py: pytest fixtures for tests that use Qlean machines.
#
# The Python twin of <qlean/qlean-test.h>. Load it with `pytest -p
# qlean_pytest`; where Qlean is installed, pytest also finds it by its
# `pytest11` entry point, so a plain `pytest` has the fixtures.
#
#   def test_hostname(qlean_machine):
#       assert qlean_machine.exec("true", None).success()
#
#   def test_two(qlean_pool):
#       pool = qlean_pool("alice", "bob")
#       pool.get("alice").exec("ping -c1 bob", None)
#
# Fixtures:
#   qlean_machine  the session's one minimal machine, booted on first use
#                  and put back to a snapshot taken when it was first
#                  ready before each test that uses it (as the g_test
#                  helpers do), so no test sees another's files.
#   qlean_pool     a factory: qlean_pool(*names, image=None, config=None)
#                  returns a started Qlean.Pool; its machines are killed
#                  when the test ends.
#   qlean_watch    qlean_watch(machine): keep this machine's logs too if
#                  the test fails.
#
# When a test fails, the console log and QMP/agent transcripts of every
# machine it used are saved under --qlean-artifacts DIR (or
# $QLEAN_TEST_ARTIFACTS), else under pytest's temporary directory, and
# the report names the folder. With --qlean-keep (or QLEAN_TEST_KEEP=1)
# the failed test's machines are kept running as machines of the `qlean`
# command line, under names printed in the report: `qlean exec NAME --
# CMD` to look around, `qlean stop NAME` when done. Machines of passing
# tests are never kept. When the host cannot run machines, tests that use
# the fixtures are skipped with the reason.
#
# SPDX-License-Identifier: MIT

import os
import re
import shutil
import subprocess
import tempfile

import pytest

__all__ = ["qlean_machine", "qlean_pool", "qlean_watch"]

_RESET_SNAPSHOT = "qlean-pytest-ready"


def _qlean():
    import gi

    gi.require_version("Qlean", "1.0")
    gi.require_version("Gio", "2.0")
    from gi.repository import Gio, Qlean

    return Gio, Qlean


def pytest_addoption(parser):
    group = parser.getgroup("qlean", "Qlean machines")
    group.addoption("--qlean-artifacts", metavar="DIR", default=None,
                    help="save the logs of a failed test's machines under DIR "
                         "(default: $QLEAN_TEST_ARTIFACTS, else pytest's temporary directory)")
    group.addoption("--qlean-keep", action="store_true", default=None,
                    help="keep a failed test's machines running (also QLEAN_TEST_KEEP=1); "
                         "stop them with `qlean stop NAME`")
    group.addoption("--qlean-no-reset", action="store_true", default=False,
                    help="do not put qlean_machine back to its first snapshot before each test")


def _keep_wanted(config):
    if config.getoption("qlean_keep"):
        return True
    return os.environ.get("QLEAN_TEST_KEEP", "") not in ("", "0")


def _safe_name(nodeid, allowed="A-Za-z0-9._-"):
    """A test id as one file name (or, with fewer @allowed characters, a
    machine name): every run of other characters becomes one '-'."""
    name = re.sub(f"[^{allowed}]+", "-", nodeid).strip("-.")
    return name[-80:] or "test"


class _Session:
    """What the plugin keeps for one pytest run."""

    def __init__(self, config):
        self.config = config
        self.machine = None        # the shared machine, once booted
        self.boot_error = None     # why it did not boot: every later test fails fast
        self.snapshot = False      # it has _RESET_SNAPSHOT
        self.dirty = False         # a test used it since it was ready or reset
        self.unavailable = None    # checked once: why machines cannot run here
        self.checked = False

    def skip_unless_available(self):
        if not self.checked:
            self.checked = True
            _, Qlean = _qlean()
            report = Qlean.check_requirements(None)
            if not Qlean.requirements_met(report):
                missing = [f"{r.name}: {r.detail}" + (f" (install {r.hint})" if r.hint else "")
                           for r in report if r.required and not r.ok]
                self.unavailable = "this host cannot run Qlean machines: " + "; ".join(missing)
        if self.unavailable:
            pytest.skip(self.unavailable)

    def shared_machine(self):
        _, Qlean = _qlean()
        self.skip_unless_available()
        if self.boot_error is not None:
            pytest.fail(f"the shared Qlean machine did not boot: {self.boot_error}", pytrace=False)

        if self.machine is not None and self.machine.get_state() != Qlean.MachineState.RUNNING:
            self._drop()
        if self.machine is not None and self.dirty and not self.config.getoption("qlean_no_reset"):
            self._reset()

        if self.machine is None:
            machine = Qlean.Machine.new_with_name("qlean-pytest", None, None)
            try:
                machine.spawn(None)
            except Exception as error:  # GLib.Error: say why, once
                self.boot_error = str(error)
                machine.kill(None)
                pytest.fail(f"the shared Qlean machine did not boot: {error}", pytrace=False)
            self.machine = machine
            try:
                self.snapshot = machine.snapshot(_RESET_SNAPSHOT, None)
            except Exception as error:
                self.snapshot = False
                print(f"qlean: cannot snapshot the shared machine, so tests will see each "
                      f"other's files and processes in it: {error}")
        self.dirty = True
        return self.machine

    def _reset(self):
        if not self.snapshot:
            self._drop()
            return
        try:
            self.machine.restore(_RESET_SNAPSHOT, None)
            self.dirty = False
        except Exception as error:
            print(f"qlean: could not reset the shared machine, booting a new one: {error}")
            self._drop()

    def _drop(self):
        machine, self.machine = self.machine, None
        self.snapshot = False
        self.dirty = False
        if machine is not None:
            machine.kill(None)

    def close(self):
        self._drop()


_SESSION_KEY = pytest.StashKey[_Session]() if hasattr(pytest, "StashKey") else None
_MACHINES_KEY = pytest.StashKey[list]() if hasattr(pytest, "StashKey") else None


def _stash(node):
    """pytest >= 7 has node.stash; older ones keep a dict on the node."""
    if hasattr(node, "stash"):
        return node.stash
    if not hasattr(node, "_qlean_stash"):
        node._qlean_stash = {}
    return node._qlean_stash


def _session(config):
    stash = _stash(config)
    if _SESSION_KEY not in stash:
        stash[_SESSION_KEY] = _Session(config)
    return stash[_SESSION_KEY]


def _used(item):
    stash = _stash(item)
    if _MACHINES_KEY not in stash:
        stash[_MACHINES_KEY] = []
    return stash[_MACHINES_KEY]


def pytest_unconfigure(config):
    stash = _stash(config)
    if _SESSION_KEY in stash:
        stash[_SESSION_KEY].close()


@pytest.fixture
def qlean_machine(request):
    """The session's shared minimal machine, reset before this test."""
    machine = _session(request.config).shared_machine()
    _used(request.node).append(machine)
    return machine


@pytest.fixture
def qlean_watch(request):
    """qlean_watch(machine): keep this machine's logs (and, with --qlean-keep,
    the machine) if the test fails."""
    def watch(machine):
        _used(request.node).append(machine)
        return machine

    return watch


@pytest.fixture
def qlean_pool(request):
    """A factory of started pools: qlean_pool("alice", "bob", image=None,
    config=None). Their machines are killed when the test ends (a kept
    machine is a copy that a `qlean` process owns)."""
    session = _session(request.config)
    pools = []

    def make(*names, image=None, config=None):
        _, Qlean = _qlean()
        session.skip_unless_available()
        if not names:
            raise ValueError("qlean_pool: name at least one machine")
        pool = Qlean.Pool.new()
        pools.append(pool)
        for name in names:
            pool.add(name, image, config)
        for i in range(pool.get_n_items()):
            _used(request.node).append(pool.get_item(i))
        pool.spawn_all(None)
        return pool

    yield make

    _, Qlean = _qlean()
    for pool in pools:
        for i in range(pool.get_n_items()):
            machine = pool.get_item(i)
            if machine.get_state() in (Qlean.MachineState.RUNNING, Qlean.MachineState.PAUSED,
                                       Qlean.MachineState.STARTING):
                machine.kill(None)


def _artifacts_root(config):
    root = config.getoption("qlean_artifacts") or os.environ.get("QLEAN_TEST_ARTIFACTS")
    if root:
        return root
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        return str(factory.getbasetemp() / "qlean-artifacts")
    return os.path.join(tempfile.gettempdir(), "qlean-artifacts")


def _keep(item, machine, lines):
    """Hands a copy of @machine, memory and all, to a `qlean` owner
    process that keeps it running after this process ends: an export,
    then `qlean import`, so the kept machine is one `qlean ls` lists.
    Returns whether it was kept."""
    Gio, Qlean = _qlean()
    cli = os.environ.get("QLEAN_CLI") or shutil.which("qlean")
    if cli is None:
        lines.append(f"qlean: cannot keep {machine.get_name()}: no `qlean` command on PATH "
                     f"(or set QLEAN_CLI)")
        return False
    name = _safe_name(f"kept-{item.name}-{machine.get_name()}", "A-Za-z0-9-")[:60]
    with tempfile.TemporaryDirectory(prefix="qlean-keep-") as tmp:
        archive = os.path.join(tmp, "machine.qlean")
        try:
            machine.export(Gio.File.new_for_path(archive), None)
        except Exception as error:
            lines.append(f"qlean: cannot keep {machine.get_name()}: {error}")
            return False
        done = subprocess.run([cli, "import", "--kept-by", f"{item.nodeid} (pid {os.getpid()})",
                               archive, name], capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        lines.append(f"qlean: cannot keep {machine.get_name()}: `qlean import` failed: "
                     f"{(done.stderr or done.stdout).strip()}")
        return False
    lines.append(f"qlean: kept {machine.get_name()} as “{name}”: `qlean exec {name} -- sh` "
                 f"to look around, `qlean stop {name}` when done")
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    machines = _used(item)
    if not machines or not report.failed or report.when not in ("setup", "call"):
        return

    lines = []
    folder = os.path.join(_artifacts_root(item.config), _safe_name(item.nodeid))
    saved = 0
    seen = set()
    for machine in machines:
        if id(machine) in seen:
            continue
        seen.add(id(machine))
        try:
            if machine.save_logs(os.path.join(folder, machine.get_name())):
                saved += 1
        except Exception as error:
            lines.append(f"qlean: could not save the logs of {machine.get_name()}: {error}")
    if saved:
        try:
            with open(os.path.join(folder, "failure.txt"), "w") as f:
                f.write(f"{item.nodeid}\n{report.longreprtext}\n")
        except OSError:
            pass
        lines.append(f"qlean: console logs and QMP/QGA transcripts of {item.nodeid} are in {folder}")

    if _keep_wanted(item.config):
        session = _session(item.config)
        for machine in [m for m in machines if id(m) in seen]:
            seen.discard(id(machine))
            if _keep(item, machine, lines) and machine is session.machine:
                # The next test must not reset what the user will look at;
                # it gets a machine of its own. (The kept one is a copy.)
                session.close()

    if lines:
        report.sections.append(("qlean", "\n".join(lines)))
        terminal = item.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            for line in lines:
                terminal.write_line(line)
