#!/usr/bin/env python3
"""Prototype (raw QEMU, not the library): a clone of a running machine whose RAM
is a share=on file of its own on tmpfs, made of its devices' state alone
(migration capability x-ignore-shared, about 330 KiB) and a sparse copy of
that file (about 90 MiB, in-kernel), instead of streaming all its RAM.

Why: the library's clone of a machine started from a memory template streams
the source's RAM (0.25-0.32 s of the clone's 0.5-0.6 s on a 2-core TCG host):
QEMU reads all 65,536 pages of the private template mapping, 4 KiB each. This
measures the design that would avoid it (see bench/RESULTS.md, "A clone's RAM
by file copy"), with the stock guest agent standing in for qlean-guest.

Usage: /usr/bin/python3 bench/prototypes/clone-shared-ram.py KERNEL_DIR [ROUNDS]
KERNEL_DIR holds the minimal image's vmlinux and initramfs.img
(~/.cache/qlean/minimal/HASH, printed by `qlean dry-run`). Needs
qemu-system-x86_64 and /dev/shm; leaves nothing behind.

Way A: stop, save the devices, copy the RAM file, start the clone's QEMU
(-incoming defer) on the copy, load. Way B: the clone's QEMU starts first, on
an empty file of the guest's size that it maps privately (as a template start
does), while the source stops, saves and the RAM is copied into that file.
"""
import json, os, socket, subprocess, sys, time, shutil

D = "/dev/shm/qproto"
KDIR = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
shutil.rmtree(D, ignore_errors=True); os.makedirs(D)

APPEND = ("console=ttyS0 quiet loglevel=0 panic=-1 mitigations=off tsc=reliable no_timer_check "
          "i8042.noaux i8042.nokbd i8042.nopnp cryptomgr.notests random.trust_cpu=on audit=0 "
          "8250.nr_uarts=1 pci=lastbus=0 noreplace-smp nokaslr loglevel=5 noapictimer qlean.hostname=proto")

def argv(name, ram, incoming=False, share="on"):
    a = ["qemu-system-x86_64", "-name", name, "-nodefaults", "-no-user-config", "-display", "none",
         "-object", f"memory-backend-file,id=pc.ram,size=256M,mem-path={ram},share={share}",
         "-machine", "q35,memory-backend=pc.ram", "-accel", "tcg,tb-size=32", "-cpu", "max", "-smp", "1", "-m", "256",
         "-kernel", f"{KDIR}/vmlinux", "-initrd", f"{KDIR}/initramfs.img", "-append", APPEND,
         "-chardev", f"socket,id=qmp,path={D}/{name}.qmp,server=on,wait=off", "-mon", "chardev=qmp,mode=control",
         "-device", "virtio-serial-pci,id=vser0,max_ports=4",
         "-chardev", f"socket,id=qga,path={D}/{name}.qga,server=on,wait=off",
         "-device", "virtserialport,bus=vser0.0,chardev=qga,id=qga0,name=org.qemu.guest_agent.0",
         "-device", "pvpanic-pci", "-serial", "none"]
    if incoming:
        a += ["-incoming", "defer"]
    return a

class Chan:
    def __init__(self, path):
        for _ in range(2000):
            try:
                self.s = socket.socket(socket.AF_UNIX); self.s.connect(path); break
            except OSError:
                time.sleep(0.002)
        self.f = self.s.makefile("rwb", buffering=0); self.buf = b""
    def send(self, obj):
        self.s.sendall(json.dumps(obj).encode() + b"\n")
    def recv(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d: raise EOFError
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        line = line.strip(b"\xff")
        return json.loads(line) if line.strip() else self.recv()

class Qmp(Chan):
    def __init__(self, path):
        super().__init__(path); self.recv(); self.cmd("qmp_capabilities")
    def cmd(self, name, **args):
        self.send({"execute": name, "arguments": args} if args else {"execute": name})
        while True:
            r = self.recv()
            if "return" in r or "error" in r:
                if "error" in r: raise RuntimeError(f"{name}: {r}")
                return r["return"]
    def wait_migration(self):
        while True:
            st = self.cmd("query-migrate").get("status")
            if st == "completed": return
            if st in ("failed", "cancelled"): raise RuntimeError(st)
            time.sleep(0.002)

def qga_sync(path, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            c = Chan(path); c.s.settimeout(0.5)
            n = 12345
            c.s.sendall(b"\xff" + json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": n}}).encode())
            while True:
                r = c.recv()
                if r.get("return") == n: return c
        except (OSError, EOFError, socket.timeout):
            time.sleep(0.01)
    raise RuntimeError("no agent")

def qga_exec_true(c):
    c.s.settimeout(5)
    c.send({"execute": "guest-exec", "arguments": {"path": "/bin/true", "capture-output": False}})
    pid = c.recv()["return"]["pid"]
    while True:
        c.send({"execute": "guest-exec-status", "arguments": {"pid": pid}})
        r = c.recv()["return"]
        if r.get("exited"): return r.get("exitcode")
        time.sleep(0.002)

def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        p = f.read().rsplit(")", 1)[1].split()
    return (int(p[11]) + int(p[12])) / os.sysconf("SC_CLK_TCK")

def sparse_copy(src, dst, truncate=True):
    fi = os.open(src, os.O_RDONLY); fo = os.open(dst, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else 0), 0o600)
    size = os.fstat(fi).st_size; off = 0; copied = 0
    if truncate: os.ftruncate(fo, size)
    while off < size:
        try: data = os.lseek(fi, off, os.SEEK_DATA)
        except OSError: break
        hole = os.lseek(fi, data, os.SEEK_HOLE)
        n = hole - data; o = data
        while n > 0:
            k = os.copy_file_range(fi, fo, n, o, o); n -= k; o += k; copied += k
        off = hole
    os.close(fi); os.close(fo); return copied

src = subprocess.Popen(argv("src", f"{D}/src.ram"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
sq = Qmp(f"{D}/src.qmp")
t = time.time(); qga_sync(f"{D}/src.qga", 60); print(f"source booted in {time.time()-t:.2f} s")
for r in range(ROUNDS):
    name = f"c{r}"
    # A pre-started clone QEMU is a separate saving; here it starts in the timed path.
    t0 = time.time()
    sq.cmd("stop")
    sq.cmd("migrate-set-capabilities", capabilities=[{"capability": "x-ignore-shared", "state": True}])
    sq.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
    sq.cmd("migrate", uri=f"exec:cat > {D}/{name}.state"); sq.wait_migration()
    t1 = time.time()
    copied = sparse_copy(f"{D}/src.ram", f"{D}/{name}.ram")
    t2 = time.time()
    sq.cmd("cont")
    cl = subprocess.Popen(argv(name, f"{D}/{name}.ram", True), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cq = Qmp(f"{D}/{name}.qmp")
    t3 = time.time()
    cq.cmd("migrate-set-capabilities", capabilities=[{"capability": "x-ignore-shared", "state": True}])
    cq.cmd("migrate-incoming", uri=f"exec:cat {D}/{name}.state")
    while cq.cmd("query-status")["status"] not in ("paused", "postmigrate", "prelaunch") or cq.cmd("query-migrate").get("status") != "completed":
        time.sleep(0.002)
    t4 = time.time()
    cq.cmd("cont")
    c = qga_sync(f"{D}/{name}.qga")
    t5 = time.time()
    rc = qga_exec_true(c)
    t6 = time.time()
    print(f"clone {r}: devices saved {t1-t0:.3f}  RAM copied {t2-t1:.3f} ({copied>>20} MiB, state {os.path.getsize(f'{D}/{name}.state')>>10} KiB)  "
          f"clone QEMU up {t3-t2:.3f}  loaded {t4-t3:.3f}  agent answers {t5-t4:.3f}  true (rc {rc}) {t6-t5:.3f}  "
          f"total {t6-t0:.3f}  clone CPU {cpu(cl.pid):.2f}")
    cl.kill(); cl.wait()
# Variant B: the clone's QEMU starts first, on an empty RAM file of the
# guest's size that it maps privately; the source stops, saves its devices
# and its RAM is copied into that file meanwhile; then the clone loads.
for r in range(ROUNDS):
    name = f"b{r}"
    t0 = time.time()
    fd = os.open(f"{D}/{name}.ram", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.ftruncate(fd, os.path.getsize(f"{D}/src.ram")); os.close(fd)
    cl = subprocess.Popen(argv(name, f"{D}/{name}.ram", True, "off"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sq.cmd("stop")
    sq.cmd("migrate-set-capabilities", capabilities=[{"capability": "x-ignore-shared", "state": True}])
    sq.cmd("migrate", uri=f"exec:cat > {D}/{name}.state"); sq.wait_migration()
    t1 = time.time()
    copied = sparse_copy(f"{D}/src.ram", f"{D}/{name}.ram", truncate=False)
    t2 = time.time()
    sq.cmd("cont")
    cq = Qmp(f"{D}/{name}.qmp")
    t3 = time.time()
    cq.cmd("migrate-set-capabilities", capabilities=[{"capability": "x-ignore-shared", "state": True}])
    cq.cmd("migrate-incoming", uri=f"exec:cat {D}/{name}.state")
    while cq.cmd("query-migrate").get("status") != "completed":
        time.sleep(0.002)
    t4 = time.time()
    cq.cmd("cont")
    c = qga_sync(f"{D}/{name}.qga")
    t5 = time.time()
    rc = qga_exec_true(c)
    t6 = time.time()
    print(f"B clone {r}: devices saved {t1-t0:.3f}  RAM copied {t2-t1:.3f}  clone QEMU up (since t0) {t3-t0:.3f}  "
          f"loaded {t4-t3:.3f}  agent answers {t5-t4:.3f}  true (rc {rc}) {t6-t5:.3f}  total {t6-t0:.3f}  clone CPU {cpu(cl.pid):.2f}")
    cl.kill(); cl.wait()
src.kill(); src.wait(); shutil.rmtree(D, ignore_errors=True)
