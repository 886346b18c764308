# conftest.py: what Qlean's Python tests share.
#
# They run over the built typelib with Debian's /usr/bin/python3 (which
# has python3-gi); tests/python/meson.build sets GI_TYPELIB_PATH and
# LD_LIBRARY_PATH to the build tree. Booting is the slow part, so each
# module that needs a machine shares one (scope="module").
#
# SPDX-License-Identifier: MIT

import gi

gi.require_version("Qlean", "1.0")
gi.require_version("Gio", "2.0")
from gi.repository import GLib, Gio, Qlean  # noqa: E402

import pytest  # noqa: E402


def _unavailable_reason():
    report = Qlean.check_requirements(None)
    if Qlean.requirements_met(report):
        return None
    missing = [f"{r.name}: {r.detail}" + (f" (install {r.hint})" if r.hint else "")
               for r in report if r.required and not r.ok]
    return "this host cannot run Qlean machines: " + "; ".join(missing)


_reason = None
_checked = False


def require_machines():
    """Skips the calling test when QEMU and the minimal image's inputs are missing."""
    global _reason, _checked
    if not _checked:
        _reason = _unavailable_reason()
        _checked = True
    if _reason:
        pytest.skip(_reason)


def run_main_loop(start, timeout_s=120):
    """Runs a GLib.MainLoop until start(done) calls done(value); returns value.

    start receives done and must begin an async call whose callback calls
    done(...) with the finished value, or with the GLib.Error it raised,
    which is raised here, after the loop has stopped."""
    loop = GLib.MainLoop()
    box = {}

    def done(value):
        box["value"] = value
        loop.quit()

    def on_timeout():
        box["value"] = TimeoutError(f"the main loop ran {timeout_s} s without an answer")
        loop.quit()
        return GLib.SOURCE_REMOVE

    timer = GLib.timeout_add_seconds(timeout_s, on_timeout)
    start(done)
    loop.run()
    if "value" in box and not isinstance(box["value"], TimeoutError):
        GLib.source_remove(timer)
    value = box["value"]
    if isinstance(value, BaseException):
        raise value
    return value


def finish(done, finish_func):
    """An async callback that hands finish_func(result)'s value, or its error, to done."""
    def callback(source, result, *args):
        try:
            done(finish_func(result))
        except GLib.Error as error:
            done(error)
    return callback


# The transports the per-transport fixtures run every test over.
TRANSPORTS = ["auto", "agent"]


def transport_config(transport):
    """A config for one of TRANSPORTS, and the transport its machine must
    end up with: qlean-guest (auto), or the stock agent alone in a guest
    that does not start qlean-guest (qlean.noguest=1)."""
    config = Qlean.MachineConfig.new()
    if transport == "agent":
        config.set_guest_transport(Qlean.GuestTransport.AGENT)
        config.set_cmdline("qlean.noguest=1")
        return config, Qlean.GuestTransport.AGENT
    return config, Qlean.GuestTransport.QLEAN_GUEST


def kill_if_running(m):
    """A fixture's teardown: whatever the tests left running goes."""
    if m.get_state() in (Qlean.MachineState.RUNNING, Qlean.MachineState.PAUSED):
        m.kill(None)


@pytest.fixture(scope="module")
def machine():
    """A running machine with the minimal image, shared by a test module."""
    require_machines()
    m = Qlean.Machine.new(None, None)
    m.spawn(None)
    yield m
    kill_if_running(m)
