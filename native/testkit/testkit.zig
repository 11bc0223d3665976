//! librefscope_testkit: native helpers for the JS tests and benchmarks, never shipped.
//!
//! JS cannot start a native thread by itself, yet the interesting cases need one: a native
//! thread that drops the last reference while the JS thread is busy must return at once.
//! This library links the real librefscope and drives it through its public C ABI only,
//! exactly as a native consumer would.

const std = @import("std");
const builtin = @import("builtin");
const pin = @import("pin");

const Counter = opaque {};
const sink_none: u32 = std.math.maxInt(u32);
const status_invalid_argument: i32 = -1;
const status_out_of_memory: i32 = -6;
const status_system_resources: i32 = -9;

extern fn refscope_object_create(counter: *Counter, size_bytes: f64, caller: u32, out_id: *f64) i32;
extern fn refscope_object_on_out_of_scope(counter: *Counter, id: f64, function: *const fn (f64, ?*anyopaque) callconv(.c) void, context: ?*anyopaque) i32;
extern fn refscope_object_release(counter: *Counter, id: f64, caller_sink: u32) i32;
extern fn refscope_object_release_batch(counter: *Counter, ids: [*]const f64, count: u32, caller_sink: u32) i32;
extern fn refscope_abi_version() u32;

const allocator = std.heap.c_allocator;

/// The clock the jobs time their calls with, and the sleep of a stalling callback: Zig
/// 0.17 has them only in `std.Io`. Nobody hands this library an `Io` (a JS runtime loads
/// it, and it runs on threads of its own and the dispatcher's), so it uses std's
/// process-wide single-threaded instance, which neither reads of the monotonic clock nor a
/// sleep on a thread that is not its own changes. (librefscope itself needs no clock.)
const io = std.Io.Threaded.global_single_threaded.io();

/// Nanoseconds on the monotonic clock.
fn monotonicNs() u64 {
    return @intCast(std.Io.Clock.awake.now(io).nanoseconds);
}

/// A native thread working through a list of ids, timing each call: releasing them (one
/// call per `batch` ids), or handing each to a callback (the per-event baseline).
const Job = struct {
    counter: ?*Counter,
    ids: []f64,
    /// Ids per release call; 1 calls `refscope_object_release`, more the batch release.
    batch: u32,
    /// When set, call this for each id instead of releasing it.
    each: ?*const fn (id: f64) callconv(.c) void = null,
    /// Instead of releasing, make a trivial library call (`refscope_abi_version`) per id:
    /// the noise floor of call timings on this thread.
    noop: bool = false,
    /// Instead of releasing the given ids, create an object and release it, per id: object
    /// lifetimes on this thread (its objects live in its own shard).
    lifetimes: bool = false,
    /// Calls by duration: bucket i counts calls of [2^i, 2^(i+1)) ns.
    histogram: [64]u64 = @splat(0),
    thread: std.Thread,
    /// Release: `done` publishes the fields written by the thread before it.
    done: std.atomic.Value(bool) = .init(false),
    call_ns_max: u64 = 0,
    elapsed_ns: u64 = 0,
    first_error: i32 = 0,

    fn run(job: *Job) void {
        const start_ns = monotonicNs();
        var index: usize = 0;
        while (index < job.ids.len) {
            const count = @min(job.batch, job.ids.len - index);
            const call_start_ns = monotonicNs();
            const status: i32 = if (job.each) |each| blk: {
                each(job.ids[index]);
                break :blk 0;
            } else if (job.noop) blk: {
                std.mem.doNotOptimizeAway(refscope_abi_version());
                break :blk 0;
            } else if (job.lifetimes) blk: {
                var id: f64 = 0;
                const created = refscope_object_create(job.counter.?, 0, sink_none, &id);
                if (created < 0) break :blk created;
                break :blk refscope_object_release(job.counter.?, id, sink_none);
            } else if (count == 1)
                refscope_object_release(job.counter.?, job.ids[index], sink_none)
            else
                refscope_object_release_batch(job.counter.?, job.ids[index..].ptr, @intCast(count), sink_none);
            const call_ns = monotonicNs() - call_start_ns;
            job.call_ns_max = @max(job.call_ns_max, call_ns);
            job.histogram[std.math.log2_int(u64, @max(call_ns, 1))] += 1;
            if (status < 0 and job.first_error == 0) job.first_error = status;
            index += count;
        }
        job.elapsed_ns = monotonicNs() - start_ns;
        job.done.store(true, .release);
    }
};

/// Sets (`on` non-zero) or removes REFSCOPE_LOCKED_COUNTS in the process environment: counters
/// opened meanwhile take the shard's lock for every count change (`Table.lock_free`), the
/// baseline bench/refops.ts measures the lock-free paths against. Not thread-safe against
/// other threads reading the environment, as setenv never is: for a benchmark's setup.
export fn refscope_testkit_locked_counts(on: u32) i32 {
    const name = "REFSCOPE_LOCKED_COUNTS";
    const failed = if (builtin.os.tag == .windows)
        _putenv_s(name, if (on != 0) "1" else "") != 0
    else if (on != 0)
        setenv(name, "1", 1) != 0
    else
        unsetenv(name) != 0;
    return if (failed) status_invalid_argument else 0;
}

extern "c" fn setenv(name: [*:0]const u8, value: [*:0]const u8, overwrite: c_int) c_int;
extern "c" fn unsetenv(name: [*:0]const u8) c_int;
extern "c" fn _putenv_s(name: [*:0]const u8, value: [*:0]const u8) c_int;

/// Starts a thread that releases each id once, `batch` ids per call (1: one call per id).
/// The ids are copied.
export fn refscope_testkit_release_start(counter: ?*Counter, ids: ?[*]const f64, count: u32, batch: u32, out_job: ?*?*Job) i32 {
    if (counter == null or batch == 0) return status_invalid_argument;
    return start(counter, null, .release, ids, count, batch, out_job);
}

/// Starts a thread that makes `count` trivial library calls, timing each: the noise floor
/// (preemption, interrupts) that any call on a native thread suffers on this machine.
export fn refscope_testkit_noop_start(count: u32, out_job: ?*?*Job) i32 {
    const ids = allocator.alloc(f64, count) catch return status_out_of_memory;
    defer allocator.free(ids);
    @memset(ids, 0);
    return start(null, null, .noop, ids.ptr, count, 1, out_job);
}

/// Starts a thread that creates an object and releases it, `count` times (timing each
/// create+release): object lifetimes on one native thread.
export fn refscope_testkit_lifetimes_start(counter: ?*Counter, count: u32, out_job: ?*?*Job) i32 {
    if (counter == null) return status_invalid_argument;
    const ids = allocator.alloc(f64, count) catch return status_out_of_memory;
    defer allocator.free(ids);
    @memset(ids, 0);
    return start(counter, null, .lifetimes, ids.ptr, count, 1, out_job);
}

/// Copies the job's histogram of call durations (64 buckets: [2^i, 2^(i+1)) ns). Only
/// once the job is done.
export fn refscope_testkit_job_histogram(job: ?*Job, out_buckets: ?*[64]f64) i32 {
    const running = job orelse return status_invalid_argument;
    const out = out_buckets orelse return status_invalid_argument;
    if (!running.done.load(.acquire)) return status_invalid_argument;
    for (out, running.histogram) |*bucket, count| bucket.* = @floatFromInt(count);
    return 0;
}

/// Starts a thread that calls `function(id)` once per id, one call after the other: the
/// "one thread-safe callback per event" baseline of the benchmarks.
export fn refscope_testkit_call_each_start(function: ?*const fn (id: f64) callconv(.c) void, ids: ?[*]const f64, count: u32, out_job: ?*?*Job) i32 {
    if (function == null) return status_invalid_argument;
    return start(null, function, .each, ids, count, 1, out_job);
}

const Mode = enum { release, noop, each, lifetimes };

fn start(counter: ?*Counter, each: ?*const fn (id: f64) callconv(.c) void, mode: Mode, ids: ?[*]const f64, count: u32, batch: u32, out_job: ?*?*Job) i32 {
    const out = out_job orelse return status_invalid_argument;
    if (count > 0 and ids == null) return status_invalid_argument;
    // Its thread runs this library's code: the host must not unload it meanwhile (Bun
    // unloads an FFI library whose JS object was garbage-collected).
    if (!pin.pin()) return status_system_resources;
    const job = allocator.create(Job) catch return status_out_of_memory;
    const copy = allocator.alloc(f64, count) catch {
        allocator.destroy(job);
        return status_out_of_memory;
    };
    if (count > 0) @memcpy(copy, ids.?[0..count]);
    job.* = .{
        .counter = counter,
        .ids = copy,
        .batch = batch,
        .each = each,
        .noop = mode == .noop,
        .lifetimes = mode == .lifetimes,
        .thread = undefined,
    };
    job.thread = std.Thread.spawn(.{}, Job.run, .{job}) catch {
        allocator.free(copy);
        allocator.destroy(job);
        return status_system_resources;
    };
    out.* = job;
    return 0;
}

/// 1 once the thread has made every call, else 0. Does not block.
export fn refscope_testkit_job_done(job: ?*Job) i32 {
    const running = job orelse return status_invalid_argument;
    return @intFromBool(running.done.load(.acquire));
}

/// Joins the thread (a release job never calls into JS, so this cannot deadlock; join a
/// call_each job only once it is done), reports the longest single call and the whole
/// run in nanoseconds and the first error status (0 if none), and frees the job.
export fn refscope_testkit_job_join(job: ?*Job, out_call_ns_max: ?*f64, out_first_error: ?*i32) i32 {
    return refscope_testkit_job_join_timed(job, out_call_ns_max, null, out_first_error);
}

export fn refscope_testkit_job_join_timed(job: ?*Job, out_call_ns_max: ?*f64, out_elapsed_ns: ?*f64, out_first_error: ?*i32) i32 {
    const running = job orelse return status_invalid_argument;
    running.thread.join();
    if (out_call_ns_max) |out| out.* = @floatFromInt(running.call_ns_max);
    if (out_elapsed_ns) |out| out.* = @floatFromInt(running.elapsed_ns);
    if (out_first_error) |out| out.* = running.first_error;
    allocator.free(running.ids);
    allocator.destroy(running);
    return 0;
}

fn sleepCallback(_: f64, context: ?*anyopaque) callconv(.c) void {
    const ms: i64 = @intCast(@intFromPtr(context));
    // Canceled only by a cancel request, which the single-threaded instance never makes.
    io.sleep(.fromMilliseconds(ms), .awake) catch unreachable;
}

/// Keeps the counter's dispatcher thread busy for `ms` milliseconds, by sending an object
/// with a sleeping native callback out of scope. Wakes queued meanwhile wait for it: this
/// is how a test makes "the wake has not arrived yet" deterministic.
export fn refscope_testkit_stall_dispatcher(counter: ?*Counter, ms: u32) i32 {
    const opened = counter orelse return status_invalid_argument;
    if (!pin.pin()) return status_system_resources; // The callback runs this library's code.
    var id: f64 = 0;
    var status = refscope_object_create(opened, 0, sink_none, &id);
    if (status < 0) return status;
    status = refscope_object_on_out_of_scope(opened, id, sleepCallback, @ptrFromInt(@as(usize, ms)));
    if (status < 0) return status;
    // A release's success is a hint (REFSCOPE_HINT_*): this call reports 0, or the error.
    status = refscope_object_release(opened, id, sink_none);
    return if (status < 0) status else 0;
}
