# gdb settings and commands for fata images, loaded by the command that
# `cargo xtask run --gdb` (or `cargo fata run --gdb`) prints: see docs/debugging.md.
#
#   fata-tasks    the executor's tasks, which are ready, and the armed timers
#   fata-timers   the armed timers only (deadline, which task each wakes)
#   fata-panic    a breakpoint on the panic handler (then `bt` shows who panicked)
#
# Works for `--target virtio` (QEMU's gdb stub) and `--target unix` (a process).

set pagination off
set confirm off
set print pretty on
set print frame-arguments scalars
set print entry-values no
set language auto
# A guest has no threads or shared libraries for gdb to look for.
set auto-solib-add off

python
import os
import subprocess
import sys

import gdb


def _fata_rust_toolchain():
    """Rust's own gdb pretty printers (Vec, String, BTreeMap, Option, ...) and, when the
    toolchain has the rust-src component, the standard library's sources (/rustc/<commit>)."""
    try:
        sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True,
                                 text=True, timeout=10).stdout.strip()
        version = subprocess.run(["rustc", "-vV"], capture_output=True, text=True,
                                 timeout=10).stdout
    except Exception:
        return
    etc = os.path.join(sysroot, "lib", "rustlib", "etc")
    if os.path.isdir(etc) and etc not in sys.path:
        sys.path.append(etc)
        try:
            import gdb_lookup
            gdb_lookup.register_printers(gdb.current_progspace())
        except Exception as e:
            print("fata.gdb: Rust pretty printers not loaded: %s" % e)
    commit = next((l.split(":", 1)[1].strip() for l in version.splitlines()
                   if l.startswith("commit-hash:")), None)
    src = os.path.join(sysroot, "lib", "rustlib", "src", "rust")
    if commit and os.path.isdir(src):
        gdb.execute("set substitute-path /rustc/%s %s" % (commit, src))


_fata_rust_toolchain()


def _fata_executor():
    try:
        cur = gdb.parse_and_eval("fata::executor::cur::CURRENT")
    except gdb.error:
        raise gdb.GdbError("no fata executor in this image (is it a fata image with symbols?)")
    cell = cur[cur.type.fields()[0].name]  # Local(Cell<Option<&Executor>>)
    opt = cell["value"]["value"]
    # Option<&Executor>: the reference is null when None.
    ptr = int(opt.cast(gdb.lookup_type("u64")))
    if ptr == 0:
        raise gdb.GdbError("the executor has not started yet")
    return gdb.Value(ptr).cast(gdb.lookup_type("fata::executor::Executor").pointer()).dereference()


def _fata_btree(map_value):
    """(key, value) pairs of a BTreeMap, through Rust's own pretty printer."""
    pp = gdb.default_visualizer(map_value)
    if pp is None or not hasattr(pp, "children"):
        raise gdb.GdbError("Rust's pretty printers are not loaded (rustc not on PATH?)")
    items = [v for _, v in pp.children()]
    return list(zip(items[0::2], items[1::2]))


def _fata_waker_task(waker):
    """The id of the task a Waker wakes, if it is an executor task's waker."""
    try:
        raw = waker["waker"]
        data = int(raw["data"])
        tw = gdb.lookup_type("fata::executor::TaskWaker").pointer()
        return int(gdb.Value(data).cast(tw).dereference()["id"])
    except Exception:
        return None


def _fata_vtable_type(addr):
    """The concrete type behind a `dyn` vtable: a Rust vtable starts with the type's
    `drop_in_place::<T>`, whose name (from the debug information) spells T."""
    try:
        u64 = gdb.lookup_type("u64")
        drop = int(gdb.Value(addr).cast(u64.pointer()).dereference())
        f = gdb.block_for_pc(drop).function
        name = f.name if f is not None else ""
    except Exception:
        name = ""
    prefix = "core::ptr::drop_in_place<"
    if name.startswith(prefix) and name.endswith(">"):
        return name[len(prefix):-1]
    return "vtable %#x" % addr


def _fata_refcell(v):
    return v["value"]["value"]


class FataTimers(gdb.Command):
    """The executor's armed timers, earliest first: deadline (ms on the monotonic clock,
    which starts near 0 at boot) and the task it wakes."""

    def __init__(self):
        super().__init__("fata-timers", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        ex = _fata_executor()
        timers = _fata_btree(_fata_refcell(ex["timers"]))
        print("%d timer(s) armed" % len(timers))
        for key, waker in timers:
            deadline = int(key["__0"])
            task = _fata_waker_task(waker)
            print("  deadline %.3f ms, wakes %s" % (
                deadline / 1e6, "task %d" % task if task is not None else "a non-task waker"))


class FataTasks(gdb.Command):
    """The executor's tasks (id and the future's type), the ready queue, and the timers."""

    def __init__(self):
        super().__init__("fata-tasks", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        ex = _fata_executor()
        tasks = _fata_btree(_fata_refcell(ex["tasks"]))
        print("%d task(s) waiting in the table (a task being polled is out of it); next id %d"
              % (len(tasks), int(ex["next_id"]["value"]["value"])))
        for key, task in tasks:
            boxed = task["future"]["pointer"]  # Pin<Box<dyn Future>> -> Box (data, vtable)
            print("  task %d: %s, future at %#x" % (
                int(key), _fata_vtable_type(int(boxed["vtable"])), int(boxed["pointer"])))
        gdb.execute("fata-timers")


class FataPanic(gdb.Command):
    """A breakpoint on the panic handler; once it is hit, `bt` shows who panicked."""

    def __init__(self):
        super().__init__("fata-panic", gdb.COMMAND_BREAKPOINTS)

    def invoke(self, arg, from_tty):
        # Bare metal: the runtime's #[panic_handler] (symbol __rustc::rust_begin_unwind);
        # unix: std's `rust_panic`, which every panic passes through.
        for loc in ("fata::platform::imp::panic", "rust_panic"):
            try:
                gdb.decode_line(loc)
            except gdb.error:
                continue
            gdb.Breakpoint(loc)
            return
        raise gdb.GdbError("no panic handler found in this image")


class FataNext(gdb.Command):
    """Like `next`, but across an `.await` that suspends: runs until the current async fn
    (or fn) reaches any other line of its own, however many polls that takes.

    `next` cannot: when the awaited future is Pending, the poll returns and gdb's "next line in
    this frame" ends in the executor. This sets temporary breakpoints on every other line of
    the current function (but its first, where an async fn's state machine is resumed) and
    continues; the first one reached wins and the rest are deleted.
    If the same async fn runs in several tasks, the first task to get there stops."""

    def __init__(self):
        super().__init__("fata-next", gdb.COMMAND_RUNNING)

    def invoke(self, arg, from_tty):
        frame = gdb.selected_frame()
        sal = frame.find_sal()
        if sal.symtab is None:
            raise gdb.GdbError("fata-next: no line information here")
        block = frame.block()
        while block is not None and block.function is None:
            block = block.superblock
        if block is None:
            raise gdb.GdbError("fata-next: not inside a function")
        here = sal.line
        # An async fn is resumed from its first line (the `async fn` itself), where the state
        # machine dispatches to the suspension point: that line is not a step.
        entry = gdb.find_pc_line(block.start).line
        addrs = set()
        for e in sal.symtab.linetable():
            if e.line > 0 and e.line not in (here, entry) and block.start <= e.pc < block.end:
                addrs.add(e.pc)
        if not addrs:
            raise gdb.GdbError("fata-next: the function has no other line")
        bps = [gdb.Breakpoint("*%#x" % a, internal=True, temporary=True) for a in sorted(addrs)]
        try:
            gdb.execute("continue", from_tty)
        finally:
            for b in bps:
                if b.is_valid():
                    b.delete()


FataTimers()
FataTasks()
FataPanic()
FataNext()
end

