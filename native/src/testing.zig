//! What the Zig tests share to wait for other threads: one latch (a counted event with a
//! bounded wait) and a deadline on the monotonic clock. Test-only: it reads the clock
//! through `std.testing.io`, which exists only in a test build.
//!
//! Every wait in the tests is bounded, so that a lost wake-up or callback fails its test
//! instead of hanging the run.
//!
//! The random tests (model_test.zig, stress_test.zig) also share their seed and scale
//! settings, sink names for messages, and a ring of recently deleted ids from here.

const std = @import("std");
const sync = @import("sync.zig");
const table = @import("table.zig");
const testing = std.testing;

/// The bound on a wait when a test names none: far above what any wait here takes, even
/// under valgrind, which runs one thread at a time.
pub const wait_timeout_ns_default = 10 * std.time.ns_per_s;

/// A point on the monotonic clock by which a wait must be over.
pub const Deadline = struct {
    at: std.Io.Timestamp,

    pub fn fromNow(timeout_ns: u64) Deadline {
        return .{ .at = now().addDuration(.fromNanoseconds(timeout_ns)) };
    }

    /// Nanoseconds left; zero once the deadline has passed.
    pub fn remainingNs(deadline: Deadline) u64 {
        const remaining = now().durationTo(deadline.at).nanoseconds;
        return if (remaining > 0) @intCast(remaining) else 0;
    }

    pub fn passed(deadline: Deadline) bool {
        return deadline.remainingNs() == 0;
    }

    fn now() std.Io.Timestamp {
        return std.Io.Clock.awake.now(std.testing.io);
    }
};

/// Counts events (`add`), and lets threads wait, at most `timeout_ns`, until the count
/// reaches a number. `abort` ends every wait, present and future, that has not reached
/// its number: a failing thread releases the others instead of leaving them to time out.
/// Everything a thread did before `add` happens before the return of a `waitFor` that
/// counted that `add`.
pub const Latch = struct {
    mutex: sync.Mutex = .{},
    condition: sync.Condition = .{},
    count: u64 = 0,
    aborted: bool = false,
    timeout_ns: u64 = wait_timeout_ns_default,

    pub fn add(latch: *Latch) void {
        latch.mutex.lock();
        defer latch.mutex.unlock();
        latch.count += 1;
        latch.condition.broadcast();
    }

    pub fn get(latch: *Latch) u64 {
        latch.mutex.lock();
        defer latch.mutex.unlock();
        return latch.count;
    }

    /// Ends every wait short of its number with `error.Aborted`; true for the call that
    /// aborted the latch first.
    pub fn abort(latch: *Latch) bool {
        latch.mutex.lock();
        defer latch.mutex.unlock();
        const first = !latch.aborted;
        latch.aborted = true;
        latch.condition.broadcast();
        return first;
    }

    /// Waits until the count is at least `target`.
    pub fn waitFor(latch: *Latch, target: u64) error{ Timeout, Aborted }!void {
        const deadline: Deadline = .fromNow(latch.timeout_ns);
        latch.mutex.lock();
        defer latch.mutex.unlock();
        while (latch.count < target) {
            if (latch.aborted) return error.Aborted;
            const remaining_ns = deadline.remainingNs();
            if (remaining_ns == 0) return error.Timeout;
            // A timeout here ends one wait, not the loop: the deadline decides.
            latch.condition.timedWait(&latch.mutex, remaining_ns) catch {};
        }
    }
};

// --- Seeds, scales and names, for the random tests (model_test.zig, stress_test.zig) ---

/// An integer environment variable, or null when unset.
pub fn envInteger(name: []const u8) !?u64 {
    const text = std.testing.environ.getPosix(name) orelse return null;
    return std.fmt.parseInt(u64, text, 0) catch {
        std.debug.print("{s}={s}: not an integer\n", .{ name, text });
        return error.BadEnvironment;
    };
}

/// `default` times REFSCOPE_STRESS_SCALE (at least 1).
pub fn scaledDefault(default: u64) !u64 {
    const text = std.testing.environ.getPosix("REFSCOPE_STRESS_SCALE") orelse return default;
    const scale = std.fmt.parseFloat(f64, text) catch 0;
    if (!(scale > 0 and scale < 1e6)) {
        std.debug.print("REFSCOPE_STRESS_SCALE={s}: not a positive number\n", .{text});
        return error.BadEnvironment;
    }
    return @max(1, @as(u64, @intFromFloat(@round(@as(f64, @floatFromInt(default)) * scale))));
}

pub const SinkName = struct {
    sink: table.Sink,

    pub fn format(name: SinkName, writer: *std.Io.Writer) std.Io.Writer.Error!void {
        if (name.sink == table.sink_none) return writer.writeAll("native");
        return writer.print("sink {d}", .{name.sink});
    }
};

pub fn sinkName(sink: table.Sink) SinkName {
    return .{ .sink = sink };
}

/// The ids of recently deleted objects, to operate on as stale ids.
pub const Graveyard = struct {
    ids: [32]table.Id = undefined,
    len: usize = 0,
    next: usize = 0,

    pub fn add(graveyard: *Graveyard, id: table.Id) void {
        graveyard.ids[graveyard.next] = id;
        graveyard.next = (graveyard.next + 1) % graveyard.ids.len;
        graveyard.len = @min(graveyard.len + 1, graveyard.ids.len);
    }
};

fn addTimes(latch: *Latch, times: u32) void {
    for (0..times) |_| latch.add();
}

test "a latch's wait returns once every add it waits for has happened" {
    var latch: Latch = .{};
    var threads: [4]std.Thread = undefined;
    for (&threads) |*thread| thread.* = try std.Thread.spawn(.{}, addTimes, .{ &latch, 100 });
    defer for (threads) |thread| thread.join();
    try latch.waitFor(400);
    try testing.expectEqual(@as(u64, 400), latch.get());
}

test "a latch's wait ends on its bound, or at once when aborted" {
    var latch: Latch = .{ .timeout_ns = 20 * std.time.ns_per_ms };
    try testing.expectError(error.Timeout, latch.waitFor(1));
    try testing.expect(latch.abort());
    try testing.expect(!latch.abort());
    try testing.expectError(error.Aborted, latch.waitFor(1));
    latch.add();
    try latch.waitFor(1); // A number reached is reached, aborted or not.
}
