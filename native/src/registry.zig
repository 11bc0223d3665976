//! The process-wide registry of open counters, so that another thread (a JS Worker) can
//! attach to a counter by a key it received as plain data, never by a raw pointer.
//!
//! A key packs a registry slot and the slot's generation (as an integer-valued double, like
//! object ids), so a stale or forged key finds nothing. A counter is in the registry from
//! `open` until `close`; it cannot be freed while there, so `attach` may use it under the
//! registry lock. Lock order: the registry lock, then a counter's mutex.

const std = @import("std");
const sync = @import("sync.zig");

const slot_bits = 10;
pub const slot_count = 1 << slot_bits;

const Slot = struct {
    counter: ?*anyopaque = null,
    generation: u32 = 0,
};

var mutex: sync.Mutex = .{};
var slots: [slot_count]Slot = @splat(.{});

/// Adds `counter`; null when every slot is taken.
pub fn add(counter: *anyopaque) ?f64 {
    mutex.lock();
    defer mutex.unlock();
    for (&slots, 0..) |*slot, index| {
        if (slot.counter != null) continue;
        slot.generation +%= 1;
        if (slot.generation == 0) slot.generation = 1;
        slot.counter = counter;
        return @floatFromInt((@as(u64, slot.generation) << slot_bits) | index);
    }
    return null;
}

pub fn remove(key: f64) void {
    mutex.lock();
    defer mutex.unlock();
    const index = find(key) orelse return;
    slots[index].counter = null;
}

/// Runs `function(counter, args...)` with the registry locked, so the counter cannot be
/// removed and freed meanwhile. Returns null when the key names no open counter.
pub fn with(key: f64, comptime function: anytype, args: anytype) ?@typeInfo(@TypeOf(function)).@"fn".return_type.? {
    mutex.lock();
    defer mutex.unlock();
    const index = find(key) orelse return null;
    return @call(.auto, function, .{slots[index].counter.?} ++ args);
}

fn find(key: f64) ?usize {
    if (!(key >= 0 and key < 4294967296.0 * slot_count)) return null;
    const value: u64 = @intFromFloat(key);
    if (@as(f64, @floatFromInt(value)) != key) return null;
    const index: usize = @intCast(value & (slot_count - 1));
    const slot = &slots[index];
    if (slot.counter == null or slot.generation != value >> slot_bits) return null;
    return index;
}

test "keys find their counter until removed, and forged keys find nothing" {
    var a: u8 = 0;
    var b: u8 = 0;
    const key_a = add(&a).?;
    const key_b = add(&b).?;
    try std.testing.expect(key_a != key_b);
    try std.testing.expectEqual(@as(?*anyopaque, &a), with(key_a, identity, .{}));
    remove(key_a);
    try std.testing.expectEqual(@as(??*anyopaque, null), with(key_a, identity, .{}));
    for ([_]f64{ -1, 0.5, std.math.nan(f64), key_b + 1, 1e300 }) |forged| {
        try std.testing.expectEqual(@as(??*anyopaque, null), with(forged, identity, .{}));
    }
    remove(key_b);
}

fn identity(counter: *anyopaque) ?*anyopaque {
    return counter;
}
