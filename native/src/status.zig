//! The result families of the C ABI: each function returns one family, and each family has
//! its own type and its own value space, so that a value can never be read as another
//! family's (in ABI v4, `REFSCOPE_OK` equalled `REFSCOPE_REFUSED` and `REFSCOPE_DRAIN`
//! equalled `REFSCOPE_REGISTERED`).
//!
//! - Errors are negative and shared by every family: `value < 0` is an error whatever the
//!   function. They are `Status`'s negative values.
//! - `Status` (0, 1): calls that only succeed or fail, and `refscope_sink_close`.
//! - `Hint` (16–19): mutations, which tell the calling sink to drain, to relay, both or
//!   neither. Bit 0 is "drain", bit 1 is "relay", over a base of 16.
//! - `Registration` (32, 33) and `Removal` (48, 49): registering and removing a callback.
//! - `CounterState` (64–66): `refscope_counter_state`.
//! - Counts (drain, snapshot, tokens, holdings, relays) are plain non-negative integers.
//!
//! Values never change once published; a new value gets a new number in its family's range.
//! Everything else reads the names and messages from here: the header's constants are
//! checked against these enums (header_test.zig), `refscope_status_name` and
//! `refscope_status_message` are generated from them, and so is the TypeScript module
//! `lib/ffi/abi.gen.ts` (native/tools/bindings.zig).

const std = @import("std");

/// Calls that succeed or fail; every error of every family.
pub const Status = enum(i32) {
    ok = 0,
    /// Not finished (`refscope_sink_close`): the sink's waker is still running. Let it
    /// finish, then call again.
    pending = 1,
    invalid_argument = -1,
    invalid_id = -2,
    stale_id = -3,
    no_reference = -4,
    limit = -5,
    out_of_memory = -6,
    closed = -7,
    wrong_thread = -8,
    system_resources = -9,
    not_owned = -10,
    limit_sinks = -11,
    limit_thread = -12,
    limit_counters = -13,
    /// Carries an error of another family's call.
    _,
};

/// What a successful mutation owes the calling sink.
pub const Hint = enum(i32) {
    /// Nothing: every token it routed is announced by a wake.
    none = hint_base,
    /// Tokens arrived for the calling sink that no wake will announce: drain it.
    drain = hint_base | hint_drain_bit,
    /// Wake-less sinks are owed wakes that the caller relays (`refscope_relay_take`).
    relay = hint_base | hint_relay_bit,
    /// Both `drain` and `relay`.
    drain_relay = hint_base | hint_drain_bit | hint_relay_bit,
    /// An error (`Status`).
    _,

    pub fn from(drain: bool, relay: bool) Hint {
        return @fromBackingInt(hint_base | (if (drain) hint_drain_bit else 0) | (if (relay) hint_relay_bit else 0));
    }
};
pub const hint_base: i32 = 16;
pub const hint_drain_bit: i32 = 1;
pub const hint_relay_bit: i32 = 2;

/// The result of registering a callback.
pub const Registration = enum(i32) {
    registered = 32,
    /// It will never run: the object has been deleted or, for an out-of-scope callback,
    /// freed or already out of scope.
    refused = 33,
    /// An error (`Status`).
    _,

    pub fn from(registered: bool) Registration {
        return if (registered) .registered else .refused;
    }
};

/// The result of removing a callback.
pub const Removal = enum(i32) {
    removed = 48,
    /// It already left the table (it will run, or ran), or never was registered.
    not_removed = 49,
    /// An error (`Status`).
    _,

    pub fn from(removed: bool) Removal {
        return if (removed) .removed else .not_removed;
    }
};

/// A counter's state (lifecycle.zig's `CounterState`, at the ABI).
pub const CounterState = enum(i32) {
    open = 64,
    closing = 65,
    closed = 66,
    /// An error (`Status`).
    _,
};

/// Every family, with the prefix of its constants in the header.
pub const families = [_]struct { type: type, prefix: []const u8, error_prefix: []const u8 }{
    .{ .type = Status, .prefix = "REFSCOPE_", .error_prefix = "REFSCOPE_E_" },
    .{ .type = Hint, .prefix = "REFSCOPE_HINT_", .error_prefix = "" },
    .{ .type = Registration, .prefix = "REFSCOPE_", .error_prefix = "" },
    .{ .type = Removal, .prefix = "REFSCOPE_", .error_prefix = "" },
    .{ .type = CounterState, .prefix = "REFSCOPE_STATE_", .error_prefix = "" },
};

/// One named value of a family: its header constant, e.g. "REFSCOPE_E_STALE_ID".
pub const Constant = struct { name: [:0]const u8, value: i32 };

/// Every named value of every family, in declaration order.
pub const constants: []const Constant = blk: {
    @setEvalBranchQuota(100_000);
    var list: []const Constant = &.{};
    for (families) |family| {
        const info = @typeInfo(family.type).@"enum";
        for (info.field_names, info.field_values) |field_name, field_value| {
            const prefix = if (field_value < 0) family.error_prefix else family.prefix;
            list = list ++ .{Constant{ .name = std.fmt.comptimePrint("{s}{s}", .{ prefix, upper(field_name) }), .value = field_value }};
        }
    }
    // No value may belong to two families: that is the point of the families.
    for (list, 0..) |constant, index| {
        for (list[0..index]) |earlier| if (earlier.value == constant.value) {
            @compileError(constant.name ++ " and " ++ earlier.name ++ " have the same value");
        };
    }
    break :blk list;
};

/// The constant's name, for any family's value; "REFSCOPE_E_UNKNOWN" for no value.
pub fn name(value: i32) [:0]const u8 {
    inline for (constants) |constant| if (constant.value == value) return constant.name;
    return "REFSCOPE_E_UNKNOWN";
}

/// A sentence for any family's value.
pub fn message(value: i32) [:0]const u8 {
    if (value >= 0) return switch (value) {
        @backingInt(Status.ok) => "success",
        @backingInt(Status.pending) => "not finished: the sink's waker is still running; call again",
        @backingInt(Hint.none) => "success",
        @backingInt(Hint.drain) => "success; the calling sink has tokens to drain",
        @backingInt(Hint.relay) => "success; wake-less sinks are owed wakes for the caller to relay",
        @backingInt(Hint.drain_relay) => "success; the calling sink has tokens to drain, and wakes to relay",
        @backingInt(Registration.registered) => "the callback is registered",
        @backingInt(Registration.refused) => "the callback is refused: the object is deleted, freed or already out of scope, so it would never run",
        @backingInt(Removal.removed) => "the callback is removed",
        @backingInt(Removal.not_removed) => "no such callback in the table: it ran, is about to run, or never was registered",
        @backingInt(CounterState.open) => "the counter is open",
        @backingInt(CounterState.closing) => "the counter is closing: its dispatcher runs what is queued",
        @backingInt(CounterState.closed) => "the counter is closed: its dispatcher has exited",
        else => "unknown status",
    };
    return switch (@as(Status, @fromBackingInt(value))) {
        .invalid_argument => "an argument is NULL or outside its domain",
        .invalid_id => "not an object id issued by this counter",
        .stale_id => "the object has been deleted (or, for a new reference, is out of scope and kept only by lineage)",
        .no_reference => "no reference of that kind is held on the object",
        .limit => "a reference count, the object table (2^24 objects), the byte total or the nesting depth (1000) would overflow",
        .out_of_memory => "out of memory",
        .closed => "the counter is closed",
        .wrong_thread => "not allowed on this thread: it would deadlock",
        .system_resources => "the operating system refused a resource",
        .not_owned => "only the object's owner may do this",
        .limit_sinks => "the counter has its maximum of 64 sinks (JS threads taking part)",
        .limit_thread => "this thread has its maximum of 128 registrations: one per sink it opened, one per counter it opened",
        .limit_counters => "the process has its maximum of 1024 open counters",
        .ok, .pending, _ => "unknown status",
    };
}

/// `name` in capitals, as the header's constants spell it (`stale_id` is `STALE_ID`).
pub fn upper(comptime text: []const u8) []const u8 {
    var buffer: [text.len]u8 = undefined;
    _ = std.ascii.upperString(&buffer, text);
    const result = buffer;
    return &result;
}

test "every named value has a name and a message of its own" {
    for (constants) |constant| {
        try std.testing.expectEqualStrings(constant.name, name(constant.value));
        try std.testing.expect(!std.mem.eql(u8, message(constant.value), "unknown status"));
    }
    try std.testing.expectEqualStrings("REFSCOPE_E_UNKNOWN", name(-1000));
    try std.testing.expectEqualStrings("unknown status", message(-1000));
    try std.testing.expectEqualStrings("unknown status", message(2));
    try std.testing.expectEqual(Hint.drain_relay, Hint.from(true, true));
    try std.testing.expectEqual(Hint.none, Hint.from(false, false));
}
