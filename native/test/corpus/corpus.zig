//! The fuzz tests' checked-in corpus: inputs that `zig build fuzz --fuzz` kept because they
//! reached code no earlier input had, copied from its corpus directories after the one-hour
//! run of issue 14 (`.zig-cache/f/<hex of the test name's Wyhash>/`, files named by their
//! order of discovery). `zig build test` replays them after the seeds that model_test.zig's
//! `fuzz` generates; any bytes are a valid input, so they stay useful as the code changes,
//! if less so. To refresh: copy inputs into model/ or abi/ as 00, 01, ... and set the count.

const std = @import("std");

/// For "model fuzz" (the table).
pub const model = load("model", 12);
/// For "ABI model fuzz" (the C ABI).
pub const abi = load("abi", 12);

fn load(comptime directory: []const u8, comptime count: usize) [count][]const u8 {
    var inputs: [count][]const u8 = undefined;
    for (&inputs, 0..) |*input, index| {
        input.* = @embedFile(std.fmt.comptimePrint("{s}/{d:0>2}", .{ directory, index }));
    }
    return inputs;
}
