#!/usr/bin/python3
# ping.py: two machines on one private network, alice and bob, ping each
# other. The Python port of the second example of the Rust Qlean.
#
# SPDX-License-Identifier: MIT

import sys

import gi

gi.require_version("Qlean", "1.0")
from gi.repository import Qlean  # noqa: E402

pool = Qlean.Pool.new()
pool.add("alice", None, None)   # the minimal image, default configuration
pool.add("bob", None, None)
pool.spawn_all(None)

alice = pool.get("alice")
bob = pool.get("bob")

ok = True
for source, target in ((bob, alice), (alice, bob)):
    ip = target.get_ip(None)
    result = source.exec(f"ping -c 4 {ip}", None)
    print(f"{source.get_name()} → {target.get_name()} ({ip}): {'ok' if result.success() else 'no answer'}")
    ok = ok and result.success()

pool.shutdown_all(None)
sys.exit(0 if ok else 1)
