//! Mutual exclusion and condition variables on the platform's own primitives: a pthread
//! mutex and condition variable (libc's, which the library always links) on Linux and
//! macOS, an SRW lock and a condition variable (kernel32's) on Windows.
//!
//! Zig 0.17's std has these only in `std.Io`, where every call takes an `Io` instance. The
//! library has none to give: its calls come from foreign threads (JS runtimes' and native
//! callers'), and it must keep no hidden runtime of its own (a process-wide `Io` would be
//! one). So it uses what those threads already share, the operating system's.
//!
//! Contract, the same for every type here:
//! - `.{}` is ready to use (an unlocked mutex, a condition nobody waits on), in a global as
//!   well as in a heap-allocated struct: no init call, and no deinit either (a mutex with
//!   the default attributes that is not locked holds no resources on glibc, musl or macOS,
//!   and an SRW lock or a condition variable never does on Windows).
//! - A value must not be moved or copied once in use: a pthread mutex may be linked into
//!   its waiters' queues by address.
//! - A mutex is not recursive: locking one that the calling thread holds deadlocks, and
//!   unlocking one that it does not hold is undefined behaviour.
//! - Everything a thread did before `unlock` happens before everything another thread does
//!   after its next `lock` (or successful `tryLock`) of that mutex.
//! - A condition is waited on with one mutex, held by the waiter, at a time. `wait`
//!   releases the mutex and blocks as one step (a `signal` made under the mutex after the
//!   waiter checked its predicate cannot be missed), and takes the mutex again before it
//!   returns. It may return spuriously, so the predicate is always rechecked in a loop. A
//!   `signal` or `broadcast` with nobody waiting does nothing: the state the predicate reads
//!   is what carries the event.
//!
//! Usage:
//!
//!     var mutex: Mutex = .{};
//!     var changed: Condition = .{};
//!     var ready = false;
//!
//!     // One thread:
//!     mutex.lock();
//!     defer mutex.unlock();
//!     while (!ready) changed.wait(&mutex);
//!
//!     // Another:
//!     mutex.lock();
//!     ready = true;
//!     changed.signal();
//!     mutex.unlock();

const std = @import("std");
const builtin = @import("builtin");
const assert = std.debug.assert;

const Platform = switch (builtin.os.tag) {
    .windows => Windows,
    .linux, .macos, .freebsd, .netbsd, .openbsd, .dragonfly => Posix,
    else => @compileError("refscope: no mutex for " ++ @tagName(builtin.os.tag)),
};

pub const Mutex = struct {
    inner: Platform.Mutex = .{},
    /// Whether a thread holds the mutex: a hint for `tryLock`, which then fails without
    /// calling the platform (test and test-and-set). A thread that spins on `tryLock` would
    /// otherwise take the mutex's cache line from its holder at every attempt (a failed
    /// pthread_mutex_trylock is still a compare-and-swap), and the holder, which writes that
    /// line as it unlocks, would wait for it: two threads on one pthread mutex lose about a
    /// third of their throughput to that (see `spinLock` in counter.zig). Written only by the
    /// holder, just after it takes the mutex and just before it lets go, so a stale value
    /// costs a spurious failure or a platform call, never a wrong result. Monotonic: the
    /// platform's lock orders everything else.
    held: std.atomic.Value(bool) = .init(false),

    /// Blocks until the calling thread holds the mutex.
    pub fn lock(mutex: *Mutex) void {
        Platform.lock(&mutex.inner);
        mutex.held.store(true, .monotonic);
    }

    /// Takes the mutex if no thread holds it, without blocking; true if it did. May fail
    /// spuriously (as a weak compare-and-swap may) just as the holder lets go.
    pub fn tryLock(mutex: *Mutex) bool {
        if (mutex.held.load(.monotonic)) return false;
        if (!Platform.tryLock(&mutex.inner)) return false;
        mutex.held.store(true, .monotonic);
        return true;
    }

    /// Lets go of the mutex, which the calling thread holds.
    pub fn unlock(mutex: *Mutex) void {
        mutex.held.store(false, .monotonic);
        Platform.unlock(&mutex.inner);
    }
};

pub const Condition = struct {
    inner: Platform.Condition = .{},

    /// Releases `mutex` (held by the caller), blocks until signalled (or spuriously), and
    /// takes `mutex` again.
    pub fn wait(condition: *Condition, mutex: *Mutex) void {
        // The mutex is free while its holder waits: `tryLock` must not take it for held.
        mutex.held.store(false, .monotonic);
        Platform.wait(&condition.inner, &mutex.inner);
        mutex.held.store(true, .monotonic);
    }

    /// As `wait`, but returns `error.Timeout` (with `mutex` held again) once about
    /// `timeout_ns` have passed without a wake-up. For bounded waits that loop on their own
    /// deadline (`monotonicNs`), as the dispatcher's and the tests' do: on POSIX the bound is a wall-clock time (the only
    /// clock a statically initialised pthread condition waits on), so a step of the system
    /// clock lengthens or shortens it; on Windows it is rounded up to whole milliseconds.
    pub fn timedWait(condition: *Condition, mutex: *Mutex, timeout_ns: u64) error{Timeout}!void {
        mutex.held.store(false, .monotonic); // As in `wait`.
        defer mutex.held.store(true, .monotonic);
        return Platform.timedWait(&condition.inner, &mutex.inner, timeout_ns);
    }

    /// Wakes one waiter, if any. The caller may hold the mutex or not.
    pub fn signal(condition: *Condition) void {
        Platform.signal(&condition.inner);
    }

    /// Wakes every waiter. The caller may hold the mutex or not.
    pub fn broadcast(condition: *Condition) void {
        Platform.broadcast(&condition.inner);
    }
};

/// Nanoseconds on a clock that never steps back (from an arbitrary origin): for deadlines.
pub fn monotonicNs() u64 {
    return Platform.monotonicNs();
}

/// Runs `function` once per `Once` value (so once per process for a global), however many
/// threads call `call` at once; every caller returns after it has run, and sees what it did.
pub fn Once(comptime function: fn () void) type {
    return struct {
        done: std.atomic.Value(bool) = .init(false),
        mutex: Mutex = .{},

        pub fn call(once: *@This()) void {
            // Acquire: pairs with the release below, so a caller that sees `done` also sees
            // everything `function` wrote.
            if (once.done.load(.acquire)) return;
            once.callSlow();
        }

        fn callSlow(once: *@This()) void {
            @branchHint(.cold);
            once.mutex.lock();
            defer once.mutex.unlock();
            // The mutex orders this with the thread that ran `function`; the flag is only
            // the fast path's.
            if (once.done.load(.monotonic)) return;
            function();
            once.done.store(true, .release);
        }
    };
}

/// pthread_mutex_t and pthread_cond_t with their default attributes, which is what
/// PTHREAD_MUTEX_INITIALIZER and PTHREAD_COND_INITIALIZER (the types' `.{}` in std.c) give.
/// Every error these calls can return stands for misuse (an unheld mutex, a corrupt one),
/// so each is asserted away.
const Posix = struct {
    const c = std.c;
    const Mutex = c.pthread_mutex_t;
    const Condition = c.pthread_cond_t;

    fn lock(mutex: *Posix.Mutex) void {
        const result = c.pthread_mutex_lock(mutex);
        assert(result == .SUCCESS);
    }

    fn tryLock(mutex: *Posix.Mutex) bool {
        return switch (c.pthread_mutex_trylock(mutex)) {
            .SUCCESS => true,
            .BUSY => false,
            else => unreachable,
        };
    }

    fn unlock(mutex: *Posix.Mutex) void {
        const result = c.pthread_mutex_unlock(mutex);
        assert(result == .SUCCESS);
    }

    fn wait(condition: *Posix.Condition, mutex: *Posix.Mutex) void {
        const result = c.pthread_cond_wait(condition, mutex);
        assert(result == .SUCCESS);
    }

    fn timedWait(condition: *Posix.Condition, mutex: *Posix.Mutex, timeout_ns: u64) error{Timeout}!void {
        const Seconds = @FieldType(c.timespec, "sec");
        var deadline: c.timespec = undefined;
        const clock_result = c.clock_gettime(.REALTIME, &deadline);
        assert(clock_result == 0);
        const nsec = @as(u64, @intCast(deadline.nsec)) + timeout_ns % std.time.ns_per_s;
        const timeout_s = timeout_ns / std.time.ns_per_s + nsec / std.time.ns_per_s;
        deadline.nsec = @intCast(nsec % std.time.ns_per_s);
        // Saturating: a bound too far off to represent waits as long as one can.
        deadline.sec +|= std.math.cast(Seconds, timeout_s) orelse std.math.maxInt(Seconds);
        return switch (c.pthread_cond_timedwait(condition, mutex, &deadline)) {
            .SUCCESS => {},
            .TIMEDOUT => error.Timeout,
            else => unreachable,
        };
    }

    fn monotonicNs() u64 {
        var now: c.timespec = undefined;
        const result = c.clock_gettime(.MONOTONIC, &now);
        assert(result == 0);
        return @as(u64, @intCast(now.sec)) * std.time.ns_per_s + @as(u64, @intCast(now.nsec));
    }

    fn signal(condition: *Posix.Condition) void {
        const result = c.pthread_cond_signal(condition);
        assert(result == .SUCCESS);
    }

    fn broadcast(condition: *Posix.Condition) void {
        const result = c.pthread_cond_broadcast(condition);
        assert(result == .SUCCESS);
    }
};

/// An SRW lock, used in exclusive mode only, and a condition variable, both zero when
/// initialised (SRWLOCK_INIT, CONDITION_VARIABLE_INIT). std.os.windows has the types but not
/// these kernel32 functions (only some of their ntdll equivalents), so they are declared
/// here. Compiled for Windows in CI, but never run there: no Windows machine runs the tests.
const Windows = struct {
    const windows = std.os.windows;
    const Mutex = windows.SRWLOCK;
    const Condition = windows.CONDITION_VARIABLE;

    extern "kernel32" fn AcquireSRWLockExclusive(lock: *windows.SRWLOCK) callconv(.winapi) void;
    extern "kernel32" fn TryAcquireSRWLockExclusive(lock: *windows.SRWLOCK) callconv(.winapi) windows.BOOLEAN;
    extern "kernel32" fn ReleaseSRWLockExclusive(lock: *windows.SRWLOCK) callconv(.winapi) void;
    extern "kernel32" fn SleepConditionVariableSRW(
        condition: *windows.CONDITION_VARIABLE,
        lock: *windows.SRWLOCK,
        timeout_ms: windows.DWORD,
        /// 0: the lock is held exclusively (not CONDITION_VARIABLE_LOCKMODE_SHARED).
        flags: windows.ULONG,
    ) callconv(.winapi) windows.BOOL;
    extern "kernel32" fn WakeConditionVariable(condition: *windows.CONDITION_VARIABLE) callconv(.winapi) void;
    extern "kernel32" fn WakeAllConditionVariable(condition: *windows.CONDITION_VARIABLE) callconv(.winapi) void;
    extern "kernel32" fn GetTickCount64() callconv(.winapi) u64;

    const infinite: windows.DWORD = std.math.maxInt(windows.DWORD);

    fn lock(mutex: *Windows.Mutex) void {
        AcquireSRWLockExclusive(mutex);
    }

    fn tryLock(mutex: *Windows.Mutex) bool {
        return TryAcquireSRWLockExclusive(mutex) != .FALSE;
    }

    fn unlock(mutex: *Windows.Mutex) void {
        ReleaseSRWLockExclusive(mutex);
    }

    fn wait(condition: *Windows.Condition, mutex: *Windows.Mutex) void {
        const woken = SleepConditionVariableSRW(condition, mutex, infinite, 0);
        assert(woken.toBool());
    }

    fn timedWait(condition: *Windows.Condition, mutex: *Windows.Mutex, timeout_ns: u64) error{Timeout}!void {
        // Rounded up, so that a wait never ends before its bound, and kept below INFINITE.
        const timeout_ms = @min(timeout_ns / std.time.ns_per_ms + @intFromBool(timeout_ns % std.time.ns_per_ms != 0), infinite - 1);
        // False only on a timeout: with a held SRW lock, no other failure is documented.
        if (!SleepConditionVariableSRW(condition, mutex, @intCast(timeout_ms), 0).toBool()) {
            return error.Timeout;
        }
    }

    fn monotonicNs() u64 {
        return GetTickCount64() * std.time.ns_per_ms;
    }

    fn signal(condition: *Windows.Condition) void {
        WakeConditionVariable(condition);
    }

    fn broadcast(condition: *Windows.Condition) void {
        WakeAllConditionVariable(condition);
    }
};

const testing = std.testing;

test "a mutex makes increments from several threads exact, and tryLock fails while held" {
    const Shared = struct {
        mutex: Mutex = .{},
        total: u64 = 0,

        fn add(shared: *@This(), rounds: u32) void {
            for (0..rounds) |_| {
                shared.mutex.lock();
                defer shared.mutex.unlock();
                shared.total += 1;
            }
        }
    };
    var shared: Shared = .{};
    const rounds = 20_000;
    var threads: [4]std.Thread = undefined;
    for (&threads) |*thread| thread.* = try std.Thread.spawn(.{}, Shared.add, .{ &shared, rounds });
    for (threads) |thread| thread.join();
    try testing.expectEqual(@as(u64, threads.len * rounds), shared.total);

    shared.mutex.lock();
    try testing.expect(!shared.mutex.tryLock());
    shared.mutex.unlock();
    try testing.expect(shared.mutex.tryLock());
    shared.mutex.unlock();
}

test "a condition hands turns between two threads, and a timed wait times out" {
    // Ping-pong: each side waits for its turn, so every hand-off needs a wake-up that
    // follows the state change it announces.
    const Turns = struct {
        mutex: Mutex = .{},
        changed: Condition = .{},
        /// Even: the main thread's turn; odd: the other's.
        turn: u32 = 0,
        const rounds = 1000;

        fn other(turns: *@This()) void {
            turns.take(1);
        }

        fn take(turns: *@This(), parity: u32) void {
            turns.mutex.lock();
            defer turns.mutex.unlock();
            for (0..rounds) |_| {
                while (turns.turn % 2 != parity) turns.changed.wait(&turns.mutex);
                turns.turn += 1;
                turns.changed.signal();
            }
        }
    };
    var turns: Turns = .{};
    {
        const thread = try std.Thread.spawn(.{}, Turns.other, .{&turns});
        defer thread.join();
        turns.take(0);
    }
    try testing.expectEqual(@as(u32, 2 * Turns.rounds), turns.turn);

    // Nobody signals: the wait ends on its bound, with the mutex held again.
    turns.mutex.lock();
    try testing.expectError(error.Timeout, turns.changed.timedWait(&turns.mutex, 10 * std.time.ns_per_ms));
    try testing.expect(!turns.mutex.tryLock());
    turns.mutex.unlock();
}

test "Once runs its function once, however many threads call it at once" {
    const Counted = struct {
        var runs: u32 = 0;
        var once: Once(run) = .{};

        fn run() void {
            runs += 1;
        }

        fn callOnce() void {
            once.call();
            assert(runs == 1);
        }
    };
    var threads: [4]std.Thread = undefined;
    for (&threads) |*thread| thread.* = try std.Thread.spawn(.{}, Counted.callOnce, .{});
    for (threads) |thread| thread.join();
    Counted.callOnce();
    try testing.expectEqual(@as(u32, 1), Counted.runs);
}
