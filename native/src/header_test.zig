//! Keeps native/include/refscope.h and the Zig exports (abi.zig) from drifting apart. The
//! C header is what C and FFI callers compile against, the Zig signatures are what runs: a
//! parameter whose type differs in one of them is undefined behaviour that no other test
//! may notice (a u32 read as a u64 can look right for small values).
//!
//! Everything is checked at compile time, so a mismatch fails `zig build test` with a
//! compile error naming the function, parameter or constant:
//!
//! - every `refscope_*` function the header declares is exported by abi.zig, and every one
//!   abi.zig exports is declared in the header;
//! - their parameter counts, calling conventions and types agree: integers by bit size and
//!   signedness, floats by size, pointers by constness and what they point to (structs by
//!   layout and fields, callbacks by their own parameters and result); a pointer that a C
//!   caller may pass as NULL is optional on the Zig side;
//! - every `REFSCOPE_*` constant the header defines equals its Zig value, and every value
//!   of every result family (status.zig) and every callback kind has its constant in the
//!   header;
//! - every result family has its typedef, `int32_t` like the exports' enums.

const std = @import("std");
const abi = @import("abi.zig");
const status = @import("status.zig");

const c = @import("refscope_h");

test "the header declares exactly the functions abi.zig exports, with the same types" {
    comptime {
        @setEvalBranchQuota(200_000);
        const exported = exportedNames();
        for (exported) |name| {
            if (!@hasDecl(c, name)) @compileError("refscope.h does not declare " ++ name ++ ", which abi.zig exports");
            expectSameFunction(name, @TypeOf(@field(c, name)), @TypeOf(@field(abi, name)));
        }
        for (@typeInfo(c).@"struct".decl_names) |decl_name| {
            if (!std.mem.startsWith(u8, decl_name, "refscope_")) continue;
            if (@TypeOf(@field(c, decl_name)) == type) continue; // a typedef
            for (exported) |name| {
                if (std.mem.eql(u8, name, decl_name)) break;
            } else @compileError("abi.zig does not export " ++ decl_name ++ ", which refscope.h declares");
        }
    }
}

test "the header's constants equal the Zig values" {
    comptime {
        @setEvalBranchQuota(200_000);
        const expected = expectedConstants();
        for (expected) |constant| {
            if (!@hasDecl(c, constant.name)) @compileError("refscope.h does not define " ++ constant.name);
            const value = @field(c, constant.name);
            if (value != constant.value) @compileError(std.fmt.comptimePrint(
                "refscope.h defines {s} as {d}, but the Zig value is {d}",
                .{ constant.name, value, constant.value },
            ));
        }
        for (@typeInfo(c).@"struct".decl_names) |decl_name| {
            if (!std.mem.startsWith(u8, decl_name, "REFSCOPE_")) continue;
            if (std.mem.eql(u8, decl_name, "REFSCOPE_H")) continue; // the include guard
            for (expected) |constant| {
                if (std.mem.eql(u8, constant.name, decl_name)) break;
            } else @compileError("header_test.zig does not know what " ++ decl_name ++ " must equal: add it to expectedConstants");
        }
    }
}

test "every result family has its int32_t typedef in the header" {
    comptime {
        for ([_][]const u8{ "refscope_status", "refscope_hint", "refscope_registration", "refscope_removal", "refscope_state" }) |name| {
            if (!@hasDecl(c, name)) @compileError("refscope.h does not declare the typedef " ++ name);
            if (@field(c, name) != i32) @compileError("refscope.h: " ++ name ++ " is not int32_t");
        }
    }
}

/// The names of abi.zig's `pub export fn`s, read from its source: reflection lists only
/// public declarations, and an export that is not public could escape the checks above.
fn exportedNames() []const []const u8 {
    const source = @embedFile("abi.zig");
    if (std.mem.count(u8, source, "\nexport fn ") != 0) {
        @compileError("abi.zig exports a function that is not pub: header_test.zig cannot check it");
    }
    var names: []const []const u8 = &.{};
    const marker = "\npub export fn ";
    var at: usize = 0;
    while (std.mem.indexOfPos(u8, source, at, marker)) |found| {
        const start = found + marker.len;
        const end = std.mem.indexOfScalarPos(u8, source, start, '(').?;
        names = names ++ .{source[start..end]};
        at = end;
    }
    return names;
}

const Constant = struct { name: []const u8, value: comptime_int };

fn expectedConstants() []const Constant {
    var constants: []const Constant = &.{
        .{ .name = "REFSCOPE_ABI_VERSION", .value = abi.abi_version },
        .{ .name = "REFSCOPE_NO_SINK", .value = abi.sink_none },
        .{ .name = "REFSCOPE_OWNER_GONE", .value = abi.owner_gone },
        .{ .name = "REFSCOPE_OBJECT_FREED", .value = abi.object_flag_freed },
        .{ .name = "REFSCOPE_OBJECT_OUT_OF_SCOPE", .value = abi.object_flag_out_of_scope },
        .{ .name = "REFSCOPE_OBJECT_RECONSTRUCTABLE", .value = abi.object_flag_reconstructable },
        .{ .name = "REFSCOPE_CREATE_RECONSTRUCTABLE", .value = abi.create_flag_reconstructable },
        .{ .name = "REFSCOPE_SINKS_MAX", .value = abi.sinks_max },
        .{ .name = "REFSCOPE_SINK_RELAYS", .value = abi.sink_flag_relays },
        .{ .name = "REFSCOPE_HINT_DRAIN_BIT", .value = status.hint_drain_bit },
        .{ .name = "REFSCOPE_HINT_RELAY_BIT", .value = status.hint_relay_bit },
    };
    // Every result family's values by name (status.zig), so that a new Zig value without
    // its constant fails too.
    for (status.constants) |constant| {
        constants = constants ++ .{Constant{ .name = constant.name, .value = constant.value }};
    }
    const callback_kind = @typeInfo(abi.CallbackKind).@"enum";
    for (callback_kind.field_names, callback_kind.field_values) |name, value| {
        constants = constants ++ .{Constant{ .name = "REFSCOPE_ON_" ++ status.upper(name), .value = value }};
    }
    return constants;
}

fn mismatch(comptime where: []const u8, comptime what: []const u8, comptime C: type, comptime Z: type) noreturn {
    @compileError(std.fmt.comptimePrint("{s}: {s}: refscope.h has {s}, abi.zig has {s}", .{ where, what, @typeName(C), @typeName(Z) }));
}

fn expectSameFunction(comptime where: []const u8, comptime C: type, comptime Z: type) void {
    const c_fn = @typeInfo(C).@"fn";
    const z_fn = switch (@typeInfo(Z)) {
        .@"fn" => |info| info,
        else => mismatch(where, "not a function", C, Z),
    };
    if (!std.meta.eql(c_fn.attrs.@"callconv", z_fn.attrs.@"callconv")) mismatch(where, "calling convention", C, Z);
    if (c_fn.attrs.varargs != z_fn.attrs.varargs) mismatch(where, "variadic", C, Z);
    if (c_fn.param_types.len != z_fn.param_types.len) mismatch(where, "parameter count", C, Z);
    for (c_fn.param_types, z_fn.param_types, 0..) |c_param_type, z_param_type, index| {
        const param_where = std.fmt.comptimePrint("{s}, parameter {d}", .{ where, index + 1 });
        const c_type = c_param_type.?;
        const z_type = z_param_type.?;
        // The Zig side must then check for NULL instead of assuming a valid pointer.
        if (isPointer(c_type) and @typeInfo(z_type) == .pointer and @typeInfo(z_type).pointer.size != .c) {
            mismatch(param_where, "a pointer C may pass as NULL must be optional", c_type, z_type);
        }
        expectSameValue(param_where, c_type, z_type);
    }
    expectSameValue(where ++ ", result", c_fn.return_type.?, z_fn.return_type.?);
}

fn isPointer(comptime T: type) bool {
    return switch (@typeInfo(T)) {
        .pointer => true,
        .optional => |optional| @typeInfo(optional.child) == .pointer,
        else => false,
    };
}

/// A parameter, result or field: the same bits, passed the same way.
fn expectSameValue(comptime where: []const u8, comptime C: type, comptime Z: type) void {
    // C pointers are all nullable; whether Zig's may be null is checked for parameters.
    const c_type = switch (@typeInfo(C)) {
        .optional => |optional| optional.child,
        else => C,
    };
    const z_type = switch (@typeInfo(Z)) {
        .optional => |optional| optional.child,
        else => Z,
    };
    switch (@typeInfo(c_type)) {
        .void => if (z_type != void) mismatch(where, "type", C, Z),
        .int => |c_integer| {
            const z_integer = switch (@typeInfo(z_type)) {
                .int => |info| info,
                .@"enum" => |info| @typeInfo(info.tag_type).int,
                else => mismatch(where, "not an integer", C, Z),
            };
            if (c_integer.bits != z_integer.bits) mismatch(where, "integer size", C, Z);
            if (c_integer.signedness != z_integer.signedness) mismatch(where, "signedness", C, Z);
        },
        .array => |c_array| switch (@typeInfo(z_type)) {
            .array => |z_array| {
                if (c_array.len != z_array.len) mismatch(where, "array length", C, Z);
                expectSameValue(where ++ " (element)", c_array.child, z_array.child);
            },
            else => mismatch(where, "not an array", C, Z),
        },
        .float => |c_float| switch (@typeInfo(z_type)) {
            .float => |z_float| if (c_float.bits != z_float.bits) mismatch(where, "float size", C, Z),
            else => mismatch(where, "not a float", C, Z),
        },
        .pointer => |c_pointer| {
            const z_pointer = switch (@typeInfo(z_type)) {
                .pointer => |info| info,
                else => mismatch(where, "not a pointer", C, Z),
            };
            if (z_pointer.size == .slice) mismatch(where, "a slice is two words", C, Z);
            if (c_pointer.attrs.@"const" != z_pointer.attrs.@"const") mismatch(where, "constness", C, Z);
            expectSamePointee(where, c_pointer.child, z_pointer.child);
        },
        else => @compileError(where ++ ": header_test.zig cannot compare " ++ @typeName(C) ++ " yet"),
    }
}

fn expectSamePointee(comptime where: []const u8, comptime C: type, comptime Z: type) void {
    switch (@typeInfo(C)) {
        .@"opaque" => if (C == anyopaque) {
            if (Z != anyopaque) mismatch(where, "void * is anyopaque", C, Z);
        } else {
            // A handle whose layout C never sees (refscope_counter).
            const handle = switch (@typeInfo(Z)) {
                .@"opaque" => true,
                .@"struct" => |info| info.layout == .auto,
                else => false,
            };
            if (!handle) mismatch(where, "pointee of an opaque handle", C, Z);
        },
        .@"fn" => expectSameFunction(where ++ " (callback)", C, Z),
        .@"struct" => |c_struct| {
            const z_struct = switch (@typeInfo(Z)) {
                .@"struct" => |info| info,
                else => mismatch(where, "pointee is not a struct", C, Z),
            };
            if (z_struct.layout != .@"extern") mismatch(where, "pointee is not an extern struct", C, Z);
            if (@sizeOf(C) != @sizeOf(Z) or @alignOf(C) != @alignOf(Z)) mismatch(where, "struct size or alignment", C, Z);
            if (c_struct.field_names.len != z_struct.field_names.len) mismatch(where, "struct field count", C, Z);
            for (c_struct.field_names, c_struct.field_types, z_struct.field_names, z_struct.field_types) |c_name, c_field_type, z_name, z_field_type| {
                const field_where = where ++ ", field " ++ c_name;
                if (!std.mem.eql(u8, c_name, z_name)) mismatch(field_where, "field name (" ++ z_name ++ " in Zig)", C, Z);
                if (@offsetOf(C, c_name) != @offsetOf(Z, z_name)) mismatch(field_where, "field offset", C, Z);
                expectSameValue(field_where, c_field_type, z_field_type);
            }
        },
        else => expectSameValue(where, C, Z),
    }
}
