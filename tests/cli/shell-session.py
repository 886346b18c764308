#!/usr/bin/python3
# shell-session.py: a scripted terminal session through `qlean shell`.
#
#   shell-session.py QLEAN MACHINE
#
# Runs the CLI on a pseudo-terminal of its own, as a user's terminal
# emulator would, and checks what a person at it would: the guest's
# terminal has this one's size from the start and follows a resize
# (TIOCSWINSZ here, SIGWINCH to the CLI), ^C interrupts a guest command
# and leaves the shell, the exit status comes through (128+N for a
# signal), and the local terminal's settings are back as they were.
#
# SPDX-License-Identifier: MIT
import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time

qlean, machine = sys.argv[1], sys.argv[2]
DEADLINE = 20.0


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Session:
    def __init__(self, argv, rows, cols):
        master, self.slave = os.openpty()
        set_size(master, rows, cols)
        # What the CLI must put back (it changes them through its stdin).
        self.before = termios.tcgetattr(self.slave)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(master)
                os.setsid()
                fcntl.ioctl(self.slave, termios.TIOCSCTTY, 0)
                for fd in (0, 1, 2):
                    os.dup2(self.slave, fd)
                os.execv(argv[0], argv)
            finally:
                os._exit(126)
        self.fd = master
        self.out = b""

    def send(self, data):
        os.write(self.fd, data)

    def expect(self, needle, what, timeout=DEADLINE, must=True):
        end = time.monotonic() + timeout
        while needle not in self.out:
            left = end - time.monotonic()
            if left <= 0:
                if not must:
                    return False
                fail("no %r (%s) in the output: %r" % (needle, what, self.out[-400:]))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    fail("the CLI's terminal closed before %r (%s): %r" % (needle, what, self.out[-400:]))
                self.out += chunk
        # Consume up to and including the match.
        self.out = self.out[self.out.index(needle) + len(needle):]
        return True

    def finish(self):
        end = time.monotonic() + DEADLINE
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > end:
                os.kill(self.pid, signal.SIGKILL)
                fail("the CLI did not exit: %r" % self.out[-400:])
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    self.out += os.read(self.fd, 4096)
                except OSError:
                    pass
        after = termios.tcgetattr(self.slave)
        if after != self.before:
            fail("the terminal settings were not restored: before %r, after %r" % (self.before, after))
        os.close(self.slave)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


# A shell: its size from the start, a resize, ^C, exit status.
s = Session([qlean, "shell", machine], 33, 77)
s.send(b"echo mark-$((6*7))\r")
s.expect(b"mark-42", "the shell runs")
s.send(b"stty size\r")
s.expect(b"33 77", "the initial size")
set_size(s.fd, 40, 100)
os.kill(s.pid, signal.SIGWINCH)
# The resize travels on its own; ask until the guest has it.
for _ in range(10):
    s.send(b"stty size\r")
    if s.expect(b"40 100", "the new size", timeout=2.0, must=False):
        break
else:
    fail("the resize never reached the guest")
s.send(b"sleep 100\r")
time.sleep(1.0)
started = time.monotonic()
s.send(b"\x03")
s.send(b"echo back-$((1+1))\r")
s.expect(b"back-2", "the shell after ^C")
if time.monotonic() - started > 10:
    fail("^C did not interrupt sleep")
s.send(b"exit 7\r")
code = s.finish()
if code != 7:
    fail("qlean shell exited with %d, not the shell's 7" % code)
print("qlean shell: size, resize, ^C, exit status 7 and the terminal restored")

# exec -t: a command killed by ^C gives 130.
s = Session([qlean, "exec", "-t", machine, "--", "sh", "-c", "echo ready; exec sleep 100"], 24, 80)
s.expect(b"ready", "exec -t runs")
time.sleep(0.5)
s.send(b"\x03")
code = s.finish()
if code != 130:
    fail("qlean exec -t of sleep interrupted by ^C exited with %d, not 130" % code)
print("qlean exec -t: ^C gives 130 and the terminal restored")

# ^D at an empty prompt ends the shell with status 0.
s = Session([qlean, "shell", machine, "--", "sh"], 24, 80)
s.send(b"echo mark-$((2*3))\r")
s.expect(b"mark-6", "sh runs")
# Only at the prompt: a ^D typed before busybox's line editor has put the
# terminal in its mode is an end of file of the old mode, and was seen lost.
s.expect(b"# ", "the prompt")
s.send(b"\x04")
code = s.finish()
if code != 0:
    fail("sh ended by ^D exited with %d" % code)
print("qlean shell -- sh: ^D ends it")

# Killed with SIGTERM (a closing terminal emulator, say), the CLI still
# puts the terminal back before it dies of the signal.
s = Session([qlean, "shell", machine, "--", "sh"], 24, 80)
s.send(b"echo mark-$((3*3))\r")
s.expect(b"mark-9", "sh runs")
if termios.tcgetattr(s.slave) == s.before:
    fail("qlean shell did not put the terminal in raw mode")
os.kill(s.pid, signal.SIGTERM)
code = s.finish()
if code != -signal.SIGTERM:
    fail("qlean shell killed by SIGTERM exited with %d" % code)
print("qlean shell: SIGTERM restores the terminal")
