//! Checks the npm platform packages that `zig build dist` writes to zig-out/dist/npm/, taking
//! each fact from its one source instead of a second copy of it:
//!
//! - the functions every library must export are abi.zig's `pub` functions named
//!   `refscope_*`, found by reflection on the native source (imported as "abi"), the way
//!   header_test.zig and the bindings generator find them;
//! - the platforms are native/npm/platforms.json, the list build.zig builds. What each library
//!   must be (object format, machine, C library, newest glibc, minimum macOS) follows from the
//!   platform's Zig target triple, resolved by std.Target as the build resolves it; npm's
//!   `os`, `cpu` and `libc` names are only what each package.json must carry;
//! - the version is the root package.json's, and the LICENSE beside it is the one every
//!   package must carry.
//!
//!   check_dist <dist directory> <native/npm/platforms.json> <root package.json>
//!
//! For each platform it checks that the package holds exactly the library, package.json,
//! README.md and LICENSE; that package.json is the one npm must see; that the library is a
//! shared library of its target's format and machine, linked only against the platform's own
//! system libraries (on Linux, the right C library: a glibc library does not load on musl,
//! nor the reverse), and asking for no newer glibc or macOS than its target names; and that it
//! exports exactly abi.zig's functions. Last, that the resolver package @refscope/native
//! offers every platform package at the same version.
//!
//! Prints TAP, as .ci/check-dist.py did (tests/run counts the `ok` and `not ok` lines):
//! `ok N - ...`, or `not ok N - ...` followed by one `#   ...` line per problem; notes as
//! `# ...`; last `# dist: N passed, M failed`. Exits 1 if any check failed, 2 on bad arguments.
//!
//! The libraries are read with std.elf, std.macho and std.coff, so the check needs nothing
//! but Zig on any host (Debian's objdump, say, reads ELF and PE but not Mach-O). Where std has
//! the record types but no reader, this walks them itself, and says so there: the ELF version
//! needs, the Mach-O export trie, a PE address's file offset, and the PE export and import
//! tables.
//!
//! build.zig builds it for the host with the native core as its "abi" import; `zig test`
//! with the same import runs the unit tests at the bottom of this file.

const std = @import("std");
const abi = @import("abi");

const Io = std.Io;
const Allocator = std.mem.Allocator;
const SemanticVersion = std.SemanticVersion;
const elf = std.elf;
const macho = std.macho;
const coff = std.coff;

/// abi.zig's `pub` functions named `refscope_*`, in the order it declares them: exactly what
/// every library must export.
const functions: []const []const u8 = abiFunctions();

fn abiFunctions() []const []const u8 {
    comptime {
        var names: []const []const u8 = &.{};
        for (@typeInfo(abi).@"struct".decl_names) |name| {
            if (!std.mem.startsWith(u8, name, "refscope_")) continue;
            if (@typeInfo(@TypeOf(@field(abi, name))) != .@"fn") continue;
            names = names ++ [_][]const u8{name};
        }
        const frozen = names[0..names.len].*;
        return &frozen;
    }
}

/// The largest library and the largest text file (JSON, README.md, LICENSE) this reads, far
/// above any real one: a bound, so that a wrong path (a device, say) fails instead of filling
/// memory.
const library_bytes_max = 256 << 20;
const text_bytes_max = 1 << 20;

pub fn main(init: std.process.Init) !u8 {
    const arena = init.arena.allocator();
    const arguments = try init.minimal.args.toSlice(arena);
    if (arguments.len != 4) {
        std.log.err("usage: check_dist <dist directory> <native/npm/platforms.json> <root package.json>", .{});
        return 2;
    }
    var stdout_buffer: [4096]u8 = undefined;
    // Streaming, not positional: stdout may be a file that others append to (a CI log).
    var stdout = Io.File.stdout().writerStreaming(init.io, &stdout_buffer);
    var tap: Tap = .{ .out = &stdout.interface };
    var context: Context = .{ .io = init.io, .arena = arena, .tap = &tap, .dist_path = arguments[1] };
    try checkAll(&context, arguments[2], arguments[3]);
    try tap.out.print("# dist: {d} passed, {d} failed\n", .{ tap.passed, tap.failed });
    try tap.out.flush();
    return if (tap.failed == 0) 0 else 1;
}

/// What every check needs. Everything is allocated in the process's arena: the program is
/// short, and nothing it reads outlives it.
const Context = struct {
    io: Io,
    arena: Allocator,
    tap: *Tap,
    /// zig-out/dist/npm/, as given.
    dist_path: []const u8 = "",
    /// The root package.json's version: every package's, and the resolver's dependencies'.
    version: []const u8 = "",
    /// The repository's LICENSE, beside the root package.json.
    license: []const u8 = "",

    fn distPath(context: *const Context, parts: []const []const u8) Allocator.Error![]const u8 {
        var all: std.ArrayList([]const u8) = .empty;
        try all.append(context.arena, context.dist_path);
        try all.appendSlice(context.arena, parts);
        return std.fs.path.join(context.arena, all.items);
    }

    fn readFile(context: *const Context, path: []const u8, bytes_max: usize) ![]const u8 {
        return Io.Dir.cwd().readFileAlloc(context.io, path, context.arena, .limited(bytes_max));
    }

    fn readJsonObject(context: *const Context, path: []const u8) !std.json.ObjectMap {
        const bytes = try context.readFile(path, text_bytes_max);
        const value = try std.json.parseFromSliceLeaky(std.json.Value, context.arena, bytes, .{});
        if (value != .object) return error.NotAJsonObject;
        return value.object;
    }
};

/// One entry of native/npm/platforms.json, as build.zig reads it too.
const Platform = @import("platform").Platform;

/// The TAP stream: numbers the checks and counts them.
const Tap = struct {
    out: *Io.Writer,
    passed: u32 = 0,
    failed: u32 = 0,

    /// Reports one check: it passes when `problems` is empty, and fails listing them.
    fn check(tap: *Tap, problems: []const []const u8, comptime description: []const u8, arguments: anytype) Io.Writer.Error!void {
        const number = tap.passed + tap.failed + 1;
        if (problems.len == 0) {
            tap.passed += 1;
            try tap.out.print("ok {d} - ", .{number});
        } else {
            tap.failed += 1;
            try tap.out.print("not ok {d} - ", .{number});
        }
        try tap.out.print(description ++ "\n", arguments);
        for (problems) |problem| try tap.out.print("#   {s}\n", .{problem});
    }

    fn note(tap: *Tap, comptime text: []const u8, arguments: anytype) Io.Writer.Error!void {
        try tap.out.print("# " ++ text ++ "\n", arguments);
    }
};

/// The problems of one check, each a line for people.
const Problems = struct {
    arena: Allocator,
    list: std.ArrayList([]const u8) = .empty,

    fn add(problems: *Problems, comptime format: []const u8, arguments: anytype) Allocator.Error!void {
        try problems.list.append(problems.arena, try std.fmt.allocPrint(problems.arena, format, arguments));
    }
};

// --- The checks -----------------------------------------------------------------------------

fn checkAll(context: *Context, platforms_path: []const u8, package_path: []const u8) !void {
    const tap = context.tap;
    try tap.check(if (functions.len == 0) &.{"none found"} else &.{}, "abi.zig declares {d} pub refscope_* functions", .{functions.len});

    var problems: Problems = .{ .arena = context.arena };
    const platforms = loadPlatforms(context, platforms_path) catch |err| blk: {
        try problems.add("{s}: {t}", .{ platforms_path, err });
        break :blk &.{};
    };
    if (loadVersion(context, package_path)) |version| context.version = version else |err| {
        try problems.add("{s}: {t}", .{ package_path, err });
    }
    const license_path = try std.fs.path.join(context.arena, &.{ std.fs.path.dirname(package_path) orelse ".", "LICENSE" });
    if (context.readFile(license_path, text_bytes_max)) |license| context.license = license else |err| {
        try problems.add("{s}: {t}", .{ license_path, err });
    }
    if (problems.list.items.len != 0) {
        return tap.check(problems.list.items, "{s}, {s} and the LICENSE beside it are readable", .{ platforms_path, package_path });
    }

    for (platforms) |platform| {
        const target = resolveTarget(context.io, platform.zig);
        try checkFiles(context, platform);
        try checkManifest(context, platform, target);
        try checkLibrary(context, platform, target);
    }
    if (platforms.len != 0) try checkResolver(context, platforms);
    // Every platform reports its four checks whatever fails, so the plan never varies with
    // the dist: a package that breaks cannot hide the checks after it.
    std.debug.assert(tap.passed + tap.failed == 1 + 4 * platforms.len + @intFromBool(platforms.len != 0));
}

fn loadPlatforms(context: *const Context, path: []const u8) ![]const Platform {
    const bytes = try context.readFile(path, text_bytes_max);
    return std.json.parseFromSliceLeaky([]const Platform, context.arena, bytes, .{ .ignore_unknown_fields = true });
}

fn loadVersion(context: *const Context, path: []const u8) ![]const u8 {
    const bytes = try context.readFile(path, text_bytes_max);
    const manifest = try std.json.parseFromSliceLeaky(struct { version: []const u8 }, context.arena, bytes, .{ .ignore_unknown_fields = true });
    return manifest.version;
}

/// The platform's target as `zig build dist` resolves it (std.Build.resolveTargetQuery does
/// the same): a triple that names its architecture and OS needs nothing from the host.
fn resolveTarget(io: Io, triple: []const u8) !std.Target {
    const query = try std.Target.Query.parse(.{ .arch_os_abi = triple });
    if (query.cpu_arch == null or query.os_tag == null) return error.TargetNotExplicit;
    return std.zig.system.resolveTargetQuery(io, query);
}

/// The package's directory holds its library, package.json, README.md and LICENSE, and
/// nothing else (npm would publish anything else too).
fn checkFiles(context: *Context, platform: Platform) !void {
    const io = context.io;
    var problems: Problems = .{ .arena = context.arena };
    const path = try context.distPath(&.{platform.name});
    const expected = [_][]const u8{ platform.file, "package.json", "README.md", "LICENSE" };
    if (Io.Dir.cwd().openDir(io, path, .{ .iterate = true })) |directory| {
        defer directory.close(io);
        const present = try directoryNames(context, directory, &problems);
        const missing = try namesNotIn(context.arena, &expected, present);
        if (missing.len != 0) try problems.add("missing: {s}", .{try std.mem.join(context.arena, ", ", missing)});
        const extra = try namesNotIn(context.arena, present, &expected);
        if (extra.len != 0) try problems.add("not part of the package: {s}", .{try std.mem.join(context.arena, ", ", extra)});

        if (directory.statFile(io, platform.file, .{})) |stat| {
            if (stat.kind == .file and stat.size == 0) try problems.add("{s} is empty", .{platform.file});
        } else |_| {} // Reported as missing above.
        if (context.readFile(try context.distPath(&.{ platform.name, "LICENSE" }), text_bytes_max)) |license| {
            if (!std.mem.eql(u8, license, context.license)) try problems.add("LICENSE differs from the repository's", .{});
        } else |_| {}
        if (context.readFile(try context.distPath(&.{ platform.name, "README.md" }), text_bytes_max)) |readme| {
            const package_name = try std.fmt.allocPrint(context.arena, "@refscope/{s}", .{platform.name});
            if (std.mem.find(u8, readme, package_name) == null) try problems.add("README.md does not name the package", .{});
        } else |_| {}
    } else |_| {
        try problems.add("{s} is missing: run `zig build dist`", .{path});
    }
    try context.tap.check(problems.list.items, "{s}: the package holds {s}, package.json, README.md and LICENSE", .{ platform.name, platform.file });
}

fn directoryNames(context: *const Context, directory: Io.Dir, problems: *Problems) ![]const []const u8 {
    var names: std.ArrayList([]const u8) = .empty;
    var iterator = directory.iterate();
    while (iterator.next(context.io) catch |err| {
        try problems.add("cannot list it: {t}", .{err});
        return names.items;
    }) |entry| {
        try names.append(context.arena, try context.arena.dupe(u8, entry.name));
    }
    return names.items;
}

/// package.json is what npm must see: the name and version, npm's os, cpu and (on Linux
/// only) libc, so that npm installs the package only where its library loads, the files to
/// publish, and public access. Its os/cpu/libc must also be what Node calls the target.
fn checkManifest(context: *Context, platform: Platform, target: anyerror!std.Target) !void {
    const arena = context.arena;
    const package_name = try std.fmt.allocPrint(arena, "@refscope/{s}", .{platform.name});
    const npm_label = try npmLabel(arena, platform.os, platform.cpu, platform.libc);
    const description = "{s}: package.json is {s}@{s} for {s}";
    const arguments = .{ platform.name, package_name, context.version, npm_label };
    var problems: Problems = .{ .arena = arena };
    const manifest = context.readJsonObject(try context.distPath(&.{ platform.name, "package.json" })) catch |err| {
        try problems.add("cannot read it: {t}", .{err});
        return context.tap.check(problems.list.items, description, arguments);
    };

    var access: std.json.ObjectMap = .empty;
    try access.put(arena, "access", .{ .string = "public" });
    const fields = [_]struct { []const u8, std.json.Value }{
        .{ "name", .{ .string = package_name } },
        .{ "version", .{ .string = context.version } },
        .{ "license", .{ .string = "MIT" } },
        .{ "os", try jsonStrings(arena, &.{platform.os}) },
        .{ "cpu", try jsonStrings(arena, &.{platform.cpu}) },
        // Scoped packages are published as restricted (paid, private) unless this says public.
        .{ "publishConfig", .{ .object = access } },
    };
    for (fields) |field| try expectField(&problems, manifest, field[0], field[1]);
    if (platform.libc) |libc| {
        try expectField(&problems, manifest, "libc", try jsonStrings(arena, &.{libc}));
    } else if (manifest.get("libc")) |libc| {
        try problems.add("libc is {s}: npm's libc field is for Linux only", .{try jsonText(arena, libc)});
    }
    const has_description = if (manifest.get("description")) |text| text == .string and text.string.len != 0 else false;
    if (!has_description) try problems.add("no description", .{});
    if (!try filesAre(arena, manifest.get("files"), &.{ platform.file, "README.md", "LICENSE" })) {
        try problems.add("files is {s}, expected {s}, README.md and LICENSE", .{ try jsonText(arena, manifest.get("files") orelse .null), platform.file });
    }
    try expectNpmNames(&problems, platform, target);
    try context.tap.check(problems.list.items, description, arguments);
}

/// platforms.json's os/cpu/libc must be what npm calls the platform's target, or npm would
/// install the package on machines where its library cannot load.
fn expectNpmNames(problems: *Problems, platform: Platform, resolved: anyerror!std.Target) !void {
    const target = resolved catch return; // The library's check reports the triple.
    const names = npmNames(&target) orelse {
        return problems.add("npm names no platform for the target {s} that check_dist.zig knows: teach npmNames", .{platform.zig});
    };
    const same_libc = if (names.libc) |libc| platform.libc != null and std.mem.eql(u8, libc, platform.libc.?) else platform.libc == null;
    if (!std.mem.eql(u8, names.os, platform.os) or !std.mem.eql(u8, names.cpu, platform.cpu) or !same_libc) {
        try problems.add("platforms.json calls it {s}, but npm calls its target {s} {s}", .{
            try npmLabel(problems.arena, platform.os, platform.cpu, platform.libc),
            platform.zig,
            try npmLabel(problems.arena, names.os, names.cpu, names.libc),
        });
    }
}

fn npmLabel(arena: Allocator, os: []const u8, cpu: []const u8, libc: ?[]const u8) Allocator.Error![]const u8 {
    if (libc) |name| return std.fmt.allocPrint(arena, "{s}/{s}/{s}", .{ os, cpu, name });
    return std.fmt.allocPrint(arena, "{s}/{s}", .{ os, cpu });
}

fn expectField(problems: *Problems, manifest: std.json.ObjectMap, key: []const u8, expected: std.json.Value) !void {
    const actual = manifest.get(key) orelse .null;
    if (jsonEqual(actual, expected)) return;
    try problems.add("{s} is {s}, expected {s}", .{ key, try jsonText(problems.arena, actual), try jsonText(problems.arena, expected) });
}

/// Whether `files` is a list of exactly these names, in any order.
fn filesAre(arena: Allocator, files: ?std.json.Value, expected: []const []const u8) Allocator.Error!bool {
    const list = files orelse return false;
    if (list != .array or list.array.items.len != expected.len) return false;
    var names: std.ArrayList([]const u8) = .empty;
    for (list.array.items) |item| {
        if (item != .string) return false;
        try names.append(arena, item.string);
    }
    return (try namesNotIn(arena, names.items, expected)).len == 0 and
        (try namesNotIn(arena, expected, names.items)).len == 0;
}

/// The library is a shared library of its target's format and machine, links the platform's
/// C library and nothing but the platform's own libraries, asks for no newer glibc or macOS
/// than the target names, and exports exactly abi.zig's functions (a second check).
fn checkLibrary(context: *Context, platform: Platform, resolved: anyerror!std.Target) !void {
    const arena = context.arena;
    const target = resolved catch |err| {
        const problem = try std.fmt.allocPrint(arena, "its target {s} is not one Zig resolves: {t}", .{ platform.zig, err });
        return failUnread(context, platform, "a shared library", problem);
    };
    const expected: Expected = .of(&target);
    const data = context.readFile(try context.distPath(&.{ platform.name, platform.file }), library_bytes_max) catch |err| {
        return failUnread(context, platform, expected.label, try std.fmt.allocPrint(arena, "cannot read it: {t}", .{err}));
    };
    const binary = readBinary(arena, data) catch |err| {
        return failUnread(context, platform, expected.label, try std.fmt.allocPrint(arena, "cannot read it as a library: {t}", .{err}));
    };

    var problems: Problems = .{ .arena = arena };
    try binaryProblems(&problems, &target, expected, binary);
    const linked = if (expected.libc) |libc| try std.fmt.allocPrint(arena, ", linked against {s}", .{libc}) else "";
    try context.tap.check(problems.list.items, "{s}: {s}: {s} for {s}{s}", .{ platform.name, platform.file, expected.label, platform.zig, linked });
    try context.tap.note("{s}: depends on {s}", .{ platform.name, try std.mem.join(arena, ", ", binary.needed) });
    if (binary.glibc_newest) |glibc| try context.tap.note("{s}: needs glibc {s} or newer", .{ platform.name, glibc.text });
    if (binary.macos_min) |macos| try context.tap.note("{s}: needs macOS {f} or newer", .{ platform.name, macos });
    try checkExports(context, platform, binary);
}

/// Both of a library's checks fail when it cannot be read.
fn failUnread(context: *Context, platform: Platform, label: []const u8, problem: []const u8) !void {
    try context.tap.check(&.{problem}, "{s}: {s}: {s} for {s}", .{ platform.name, platform.file, label, platform.zig });
    try context.tap.check(&.{"not checked: the library was not read"}, exports_description, .{ platform.name, platform.file, functions.len });
}

const exports_description = "{s}: {s} exports exactly the {d} refscope_* functions of abi.zig";

/// What is wrong with a library that was read, against what its target says it must be.
fn binaryProblems(problems: *Problems, target: *const std.Target, expected: Expected, binary: Binary) !void {
    const machine = expected.machine orelse {
        return problems.add("check_dist.zig knows no {t} machine for {t}: teach expectedMachine", .{ target.ofmt, target.cpu.arch });
    };
    if (binary.format != expected.format or !binary.shared or binary.machine != machine) {
        try problems.add("it is {s}; expected: {s}, machine 0x{x}", .{ binary.description, expected.label, machine });
    }
    var strays: std.ArrayList([]const u8) = .empty;
    for (binary.needed) |library| {
        if (!isSystemLibrary(target, library)) try strays.append(problems.arena, library);
    }
    if (strays.items.len != 0) {
        try problems.add("depends on libraries that are not the platform's own: {s}", .{try std.mem.join(problems.arena, ", ", strays.items)});
    }
    if (expected.libc) |libc| if (!contains(binary.needed, libc)) {
        const needed = if (binary.needed.len == 0) "nothing" else try std.mem.join(problems.arena, ", ", binary.needed);
        try problems.add("does not link {s}: it links {s}", .{ libc, needed });
    };
    // A gnu triple names the oldest glibc the package supports ("x86_64-linux-gnu.2.17"): no
    // symbol may need a newer one, or the dynamic loader refuses the library there.
    if (expected.glibc_max) |glibc_max| if (binary.glibc_newest) |newest| if (newest.version.order(glibc_max) == .gt) {
        try problems.add("needs glibc {s}, newer than the {s} its target names", .{ newest.text, try shortVersion(problems.arena, glibc_max) });
    };
    // A macOS triple names the oldest macOS the package supports ("x86_64-macos.11.0"): the
    // dylib must ask for exactly that one (a newer one and dyld refuses to load it there).
    if (expected.macos_min) |macos_min| {
        if (binary.macos_min) |actual| {
            if (actual.order(macos_min) != .eq) try problems.add("needs macOS {f}, expected {f} from its target", .{ actual, macos_min });
        } else try problems.add("names no minimum macOS (no LC_BUILD_VERSION), expected {f} from its target", .{macos_min});
    }
}

/// The library exports every one of abi.zig's functions, no other refscope_* function, and
/// nothing else but what the linker adds to every library of its format.
fn checkExports(context: *Context, platform: Platform, binary: Binary) !void {
    const arena = context.arena;
    var exported: std.ArrayList([]const u8) = .empty;
    var others: std.ArrayList([]const u8) = .empty;
    for (binary.exports) |symbol| {
        if (symbol.is_function and std.mem.startsWith(u8, symbol.name, "refscope_")) {
            try exported.append(arena, symbol.name);
        } else if (!contains(linkerExports(binary.format), symbol.name)) {
            try others.append(arena, symbol.name);
        }
    }
    var problems: Problems = .{ .arena = arena };
    const missing = try namesNotIn(arena, functions, exported.items);
    if (missing.len != 0) try problems.add("in abi.zig, not exported: {s}", .{try std.mem.join(arena, ", ", missing)});
    const extra = try namesNotIn(arena, exported.items, functions);
    if (extra.len != 0) try problems.add("exported, not in abi.zig: {s}", .{try std.mem.join(arena, ", ", extra)});
    const strays = try namesNotIn(arena, others.items, &.{});
    if (strays.len != 0) {
        try problems.add("exports symbols that are neither abi.zig's nor the linker's: {s}", .{try std.mem.join(arena, ", ", strays)});
    }
    try context.tap.check(problems.list.items, exports_description, .{ platform.name, platform.file, functions.len });
}

/// The resolver package must offer exactly these platforms, at this version, and hold every
/// file it lists.
fn checkResolver(context: *Context, platforms: []const Platform) !void {
    const arena = context.arena;
    const description = "native: @refscope/native@{s} offers the {d} platform packages as optional dependencies";
    const arguments = .{ context.version, platforms.len };
    var problems: Problems = .{ .arena = arena };
    const manifest = context.readJsonObject(try context.distPath(&.{ "native", "package.json" })) catch |err| {
        try problems.add("cannot read its package.json: {t}", .{err});
        return context.tap.check(problems.list.items, description, arguments);
    };
    const name = manifest.get("name") orelse .null;
    const version = manifest.get("version") orelse .null;
    if (!jsonEqual(name, .{ .string = "@refscope/native" }) or !jsonEqual(version, .{ .string = context.version })) {
        try problems.add("it is {s}@{s}, expected @refscope/native@{s}", .{ try jsonText(arena, name), try jsonText(arena, version), context.version });
    }
    var dependencies: std.json.ObjectMap = .empty;
    for (platforms) |platform| {
        try dependencies.put(arena, try std.fmt.allocPrint(arena, "@refscope/{s}", .{platform.name}), .{ .string = context.version });
    }
    try expectField(&problems, manifest, "optionalDependencies", .{ .object = dependencies });
    var access: std.json.ObjectMap = .empty;
    try access.put(arena, "access", .{ .string = "public" });
    if (!jsonEqual(manifest.get("publishConfig") orelse .null, .{ .object = access })) {
        try problems.add("publishConfig.access is not public: npm would publish it as restricted", .{});
    }
    if (manifest.get("dependencies")) |hard| if (!isEmpty(hard)) {
        try problems.add("a platform package must not be a hard dependency: only one fits any machine", .{});
    };
    var files: std.ArrayList([]const u8) = .empty;
    if (manifest.get("files")) |listed| if (listed == .array) for (listed.array.items) |file| {
        if (file == .string) try files.append(arena, file.string);
    };
    try files.append(arena, "package.json");
    for (files.items) |file| {
        const stat = Io.Dir.cwd().statFile(context.io, try context.distPath(&.{ "native", file }), .{});
        const is_file = if (stat) |found| found.kind == .file else |_| false;
        if (!is_file) try problems.add("{s} is missing", .{file});
    }
    try context.tap.check(problems.list.items, description, arguments);
}

// --- What a target's library must be ----------------------------------------------------------

/// What a platform's library must be, every part of it derived from the platform's target.
const Expected = struct {
    format: std.Target.ObjectFormat,
    /// "ELF64 shared object": for people, in the check's description.
    label: []const u8,
    /// ELF e_machine, Mach-O CPU type or COFF machine; null when this tool knows none.
    machine: ?u32,
    /// The C library it must link: glibc's libc.so.6, musl's libc.so, macOS's libSystem.
    libc: ?[]const u8,
    /// On glibc: the newest glibc whose symbols it may need (the triple's `.2.17`).
    glibc_max: ?SemanticVersion,
    /// On macOS: the minimum macOS it must name (the triple's `.11.0`).
    macos_min: ?SemanticVersion,

    fn of(target: *const std.Target) Expected {
        return .{
            .format = target.ofmt,
            .label = switch (target.ofmt) {
                .elf => "ELF64 shared object",
                .macho => "Mach-O 64-bit dylib",
                .coff => "PE32+ DLL",
                else => "shared library",
            },
            .machine = expectedMachine(target),
            .libc = if (target.isGnuLibC())
                "libc.so.6"
            else if (target.isMuslLibC())
                "libc.so"
            else if (target.os.tag == .macos)
                "/usr/lib/libSystem.B.dylib"
            else
                null,
            .glibc_max = if (target.isGnuLibC()) target.os.versionRange().gnuLibCVersion() else null,
            .macos_min = if (target.os.tag == .macos) target.os.version_range.semver.min else null,
        };
    }
};

/// The machine field the target's object format gives its architecture: std.Target maps an
/// architecture to its ELF and COFF machines; for Mach-O, std.macho defines the CPU types of
/// the two architectures Apple ships (std.debug.MachOFile maps them the same way).
fn expectedMachine(target: *const std.Target) ?u32 {
    return switch (target.ofmt) {
        .elf => switch (target.toElfMachine()) {
            .NONE => null,
            else => |machine| @backingInt(machine),
        },
        .macho => switch (target.cpu.arch) {
            .x86_64 => @bitCast(macho.CPU_TYPE_X86_64),
            .aarch64 => @bitCast(macho.CPU_TYPE_ARM64),
            else => null,
        },
        .coff => switch (target.toCoffMachine()) {
            .UNKNOWN => null,
            else => |machine| @backingInt(machine),
        },
        else => null,
    };
}

/// The libraries a platform's library may depend on: its C library and the OS's own. Anything
/// else would have to be installed beside refscope, and npm cannot do that.
fn isSystemLibrary(target: *const std.Target, name: []const u8) bool {
    if (target.isGnuLibC()) {
        // The dynamic loader's own name is the target's (ld-linux-x86-64.so.2, ...).
        const loader = std.fs.path.basename(target.dynamic_linker.get() orelse "");
        const glibc = [_][]const u8{ "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", loader };
        return contains(&glibc, name);
    }
    if (target.isMuslLibC()) return std.mem.eql(u8, name, "libc.so");
    if (target.os.tag == .macos) {
        return std.mem.eql(u8, name, "/usr/lib/libSystem.B.dylib") or
            std.mem.startsWith(u8, name, "/usr/lib/system/") or
            std.mem.startsWith(u8, name, "/System/Library/Frameworks/");
    }
    if (target.os.tag == .windows) {
        // Windows compares DLL names without regard to case: the linker writes KERNEL32.dll.
        const dlls = [_][]const u8{ "kernel32.dll", "ntdll.dll", "advapi32.dll", "bcrypt.dll", "ws2_32.dll", "userenv.dll", "ucrtbase.dll" };
        for (dlls) |dll| if (std.ascii.eqlIgnoreCase(name, dll)) return true;
        return std.ascii.startsWithIgnoreCase(name, "api-ms-win-") and std.ascii.endsWithIgnoreCase(name, ".dll");
    }
    return false;
}

/// Symbols that the linker or the C runtime adds to every library of the format; any other
/// export that is not abi.zig's fails the check. Mach-O names are without their leading
/// underscore, like every Mach-O name here.
fn linkerExports(format: std.Target.ObjectFormat) []const []const u8 {
    return switch (format) {
        .macho => &.{ "_mh_execute_header", "_mh_dylib_header", "__dso_handle" },
        .coff => &.{"_DllMainCRTStartup"},
        else => &.{},
    };
}

const NpmNames = struct { os: []const u8, cpu: []const u8, libc: ?[]const u8 };

/// What Node and npm call a target: `process.platform`, `process.arch` and, on Linux, the C
/// library that npm's `libc` field names. The one place that maps Zig's names to npm's.
fn npmNames(target: *const std.Target) ?NpmNames {
    const os: []const u8 = switch (target.os.tag) {
        .linux => "linux",
        .macos => "darwin",
        .windows => "win32",
        else => return null,
    };
    const cpu: []const u8 = switch (target.cpu.arch) {
        .x86_64 => "x64",
        .aarch64 => "arm64",
        else => return null,
    };
    if (target.os.tag != .linux) return .{ .os = os, .cpu = cpu, .libc = null };
    const libc: []const u8 = if (target.isGnuLibC()) "glibc" else if (target.isMuslLibC()) "musl" else return null;
    return .{ .os = os, .cpu = cpu, .libc = libc };
}

// --- Reading the libraries ------------------------------------------------------------------

/// What the checks need to know of a shared library, in any of the three formats.
const Binary = struct {
    format: std.Target.ObjectFormat,
    /// What the file is, in a problem line's words: "ELF64 e_type 3 e_machine 62".
    description: []const u8,
    shared: bool,
    machine: u32,
    /// What dlsym or GetProcAddress finds in it.
    exports: []const Symbol,
    /// The libraries it names for the loader to load first.
    needed: []const []const u8,
    /// ELF: the newest GLIBC_x.y version that any of its symbols needs.
    glibc_newest: ?GlibcVersion = null,
    /// Mach-O: the minimum macOS that LC_BUILD_VERSION names.
    macos_min: ?SemanticVersion = null,
};

const Symbol = struct { name: []const u8, is_function: bool };

const GlibcVersion = struct {
    /// As the library names it, without GLIBC_: "2.17".
    text: []const u8,
    version: SemanticVersion,
};

/// Reads the file as whatever its magic number says it is, so that a library of the wrong
/// format is reported as what it is ("it is Mach-O ...; expected: ELF64 ...").
fn readBinary(arena: Allocator, data: []const u8) !Binary {
    if (std.mem.startsWith(u8, data, elf.MAGIC)) return readElf(arena, data);
    if (data.len >= 4 and std.mem.readInt(u32, data[0..4], .little) == macho.MH_MAGIC_64) return readMachO(arena, data);
    if (std.mem.startsWith(u8, data, "MZ")) return readPe(arena, data);
    return error.NotElfMachO64OrPe;
}

/// The bytes [offset, offset + size) of the file, or an error if they run past its end.
fn bytesAt(data: []const u8, offset: u64, size: u64) ![]const u8 {
    if (offset > data.len or size > data.len - offset) return error.PastTheEndOfTheFile;
    return data[@intCast(offset)..][0..@intCast(size)];
}

/// The NUL-terminated string at `offset` of a string table.
fn stringAt(strings: []const u8, offset: u64) ![]const u8 {
    if (offset >= strings.len) return error.StringPastItsTable;
    const rest = strings[@intCast(offset)..];
    const end = std.mem.findScalar(u8, rest, 0) orelse return error.UnterminatedString;
    return rest[0..end];
}

fn readElf(arena: Allocator, data: []const u8) !Binary {
    var reader: Io.Reader = .fixed(data);
    const header = try elf.Header.read(&reader);
    // Every platform is 64-bit: a 32-bit one would need Elf32 symbols, and fails here first.
    if (!header.is_64) return error.NotElf64;
    const sections = try arena.alloc(elf.Elf64_Shdr, header.shnum);
    var section_headers = header.iterateSectionHeadersBuffer(data);
    for (sections) |*section| section.* = (try section_headers.next()).?;

    var exports: std.ArrayList(Symbol) = .empty;
    var needed: std.ArrayList([]const u8) = .empty;
    var glibc_newest: ?GlibcVersion = null;
    for (sections) |section| switch (section.sh_type) {
        @backingInt(elf.SHT.DYNSYM) => {
            const strings = try linkedSectionBytes(data, sections, section);
            try elfExports(arena, header.endian, try sectionBytes(data, section), strings, &exports);
        },
        @backingInt(elf.SHT.DYNAMIC) => {
            const strings = try linkedSectionBytes(data, sections, section);
            _ = try sectionBytes(data, section); // The iterator slices without checking.
            var entries = header.iterateDynamicSectionBuffer(data, section.sh_offset, section.sh_size);
            while (try entries.next()) |entry| switch (entry.d_tag) {
                elf.DT_NULL => break,
                elf.DT_NEEDED => try needed.append(arena, try stringAt(strings, entry.d_val)),
                else => {},
            };
        },
        @backingInt(elf.SHT.GNU_VERNEED) => {
            const strings = try linkedSectionBytes(data, sections, section);
            glibc_newest = try elfGlibcNewest(header.endian, try sectionBytes(data, section), section.sh_info, strings);
        },
        else => {},
    };
    return .{
        .format = .elf,
        .description = try std.fmt.allocPrint(arena, "ELF64 e_type {d} e_machine {d}", .{ @backingInt(header.type), @backingInt(header.machine) }),
        .shared = header.type == .DYN,
        .machine = @backingInt(header.machine),
        .exports = exports.items,
        .needed = needed.items,
        .glibc_newest = glibc_newest,
    };
}

/// A section's bytes in the file (an SHT_NOBITS section has none there).
fn sectionBytes(data: []const u8, section: elf.Elf64_Shdr) ![]const u8 {
    if (section.sh_type == @backingInt(elf.SHT.NOBITS)) return &.{};
    return bytesAt(data, section.sh_offset, section.sh_size);
}

/// The bytes of the section that `section.sh_link` names: the strings of a symbol table, a
/// dynamic section or version needs.
fn linkedSectionBytes(data: []const u8, sections: []const elf.Elf64_Shdr, section: elf.Elf64_Shdr) ![]const u8 {
    if (section.sh_link >= sections.len) return error.SectionLinkPastTheTable;
    return sectionBytes(data, sections[section.sh_link]);
}

/// The dynamic symbols that dlsym finds: defined, global or weak, of default or protected
/// visibility.
fn elfExports(arena: Allocator, endian: std.builtin.Endian, symbols: []const u8, strings: []const u8, exports: *std.ArrayList(Symbol)) !void {
    var reader: Io.Reader = .fixed(symbols);
    for (0..symbols.len / @sizeOf(elf.Elf64_Sym)) |index| {
        const symbol = try reader.takeStruct(elf.Elf64_Sym, endian);
        if (index == 0) continue; // The null symbol.
        const binding = symbol.st_bind();
        const visibility = symbol.st_other & 0x3;
        if (symbol.st_shndx == elf.SHN_UNDEF) continue;
        if (binding != @backingInt(elf.STB.GLOBAL) and binding != @backingInt(elf.STB.WEAK)) continue;
        if (visibility != @backingInt(elf.STV.DEFAULT) and visibility != @backingInt(elf.STV.PROTECTED)) continue;
        try exports.append(arena, .{
            .name = try stringAt(strings, symbol.st_name),
            .is_function = symbol.st_type() == @backingInt(elf.STT.FUNC),
        });
    }
}

/// The newest GLIBC_x.y of the version needs (.gnu.version_r): `count` Verneed entries, each
/// with its chain of Vernaux names. std.elf has both records but no walker.
fn elfGlibcNewest(endian: std.builtin.Endian, needs: []const u8, count: u32, strings: []const u8) !?GlibcVersion {
    var newest: ?GlibcVersion = null;
    var need_offset: u64 = 0;
    for (0..count) |_| {
        var need_reader: Io.Reader = .fixed(try bytesAt(needs, need_offset, @sizeOf(elf.Verneed)));
        const need = try need_reader.takeStruct(elf.Verneed, endian);
        var aux_offset = need_offset + need.aux;
        for (0..need.cnt) |_| {
            var aux_reader: Io.Reader = .fixed(try bytesAt(needs, aux_offset, @sizeOf(elf.Vernaux)));
            const aux = try aux_reader.takeStruct(elf.Vernaux, endian);
            if (glibcVersion(try stringAt(strings, aux.name))) |version| {
                if (newest == null or version.version.order(newest.?.version) == .gt) newest = version;
            }
            aux_offset += aux.next;
        }
        need_offset += need.next;
    }
    return newest;
}

/// "GLIBC_2.17" as a version; null for names that are no glibc release ("GLIBC_PRIVATE").
fn glibcVersion(name: []const u8) ?GlibcVersion {
    const prefix = "GLIBC_";
    if (!std.mem.startsWith(u8, name, prefix)) return null;
    const text = name[prefix.len..];
    const version = std.Target.Query.parseVersion(text) catch return null;
    return .{ .text = text, .version = version };
}

fn readMachO(arena: Allocator, data: []const u8) !Binary {
    var reader: Io.Reader = .fixed(data);
    const header = try reader.takeStruct(macho.mach_header_64, .little);
    std.debug.assert(header.magic == macho.MH_MAGIC_64); // readBinary looked.
    var commands = try macho.LoadCommandIterator.init(&header, data[@sizeOf(macho.mach_header_64)..]);
    var trie: []const u8 = &.{};
    var symbol_table: ?macho.symtab_command = null;
    var needed: std.ArrayList([]const u8) = .empty;
    var macos_min: ?SemanticVersion = null;
    while (try commands.next()) |command| switch (command.hdr.cmd) {
        .DYLD_INFO, .DYLD_INFO_ONLY => {
            const info = command.cast(macho.dyld_info_command) orelse return error.ShortLoadCommand;
            trie = try bytesAt(data, info.export_off, info.export_size);
        },
        .DYLD_EXPORTS_TRIE => {
            const link = command.cast(macho.linkedit_data_command) orelse return error.ShortLoadCommand;
            trie = try bytesAt(data, link.dataoff, link.datasize);
        },
        .SYMTAB => symbol_table = command.cast(macho.symtab_command) orelse return error.ShortLoadCommand,
        .LOAD_DYLIB, .LOAD_WEAK_DYLIB, .REEXPORT_DYLIB, .LOAD_UPWARD_DYLIB => {
            const dylib = command.cast(macho.dylib_command) orelse return error.ShortLoadCommand;
            if (dylib.dylib.name >= command.data.len) return error.DylibNamePastItsCommand;
            try needed.append(arena, command.getDylibPathName());
        },
        .BUILD_VERSION => {
            const build = command.cast(macho.build_version_command) orelse return error.ShortLoadCommand;
            macos_min = machOVersion(build.minos);
        },
        else => {},
    };

    const names = if (trie.len != 0)
        try exportTrieNames(arena, trie)
    else if (symbol_table) |table|
        try symbolTableNames(arena, data, table)
    else
        return error.NoExportTrieNorSymbolTable;
    // C names carry a leading underscore in Mach-O. Every export is code but the linker's own
    // symbols, which linkerExports lists.
    const exports = try arena.alloc(Symbol, names.len);
    for (exports, names) |*symbol, name| {
        symbol.* = .{ .name = if (std.mem.startsWith(u8, name, "_")) name[1..] else name, .is_function = true };
    }
    return .{
        .format = .macho,
        .description = try std.fmt.allocPrint(arena, "Mach-O 64-bit filetype {d} cputype 0x{x}", .{ header.filetype, @as(u32, @bitCast(header.cputype)) }),
        .shared = header.filetype == macho.MH_DYLIB,
        .machine = @bitCast(header.cputype),
        .exports = exports,
        .needed = needed.items,
        .macos_min = macos_min,
    };
}

/// LC_BUILD_VERSION's X.Y.Z, packed in nibbles as xxxx.yy.zz.
fn machOVersion(packed_version: u32) SemanticVersion {
    return .{ .major = packed_version >> 16, .minor = (packed_version >> 8) & 0xff, .patch = packed_version & 0xff };
}

/// The names in a dyld export trie: what dlsym finds in the image. Hand-written: std.macho
/// has the trie's flag constants but no reader. Each node is visited once, so a trie that
/// loops or points past its end fails instead of running forever.
fn exportTrieNames(arena: Allocator, trie: []const u8) ![]const []const u8 {
    const Pending = struct { node: u64, prefix: []const u8 };
    var names: std.ArrayList([]const u8) = .empty;
    var pending: std.ArrayList(Pending) = .empty;
    var seen = try std.DynamicBitSetUnmanaged.initEmpty(arena, trie.len);
    try pending.append(arena, .{ .node = 0, .prefix = "" });
    while (pending.pop()) |item| {
        if (item.node >= trie.len or seen.isSet(@intCast(item.node))) return error.ExportTrieLoopsOrOverruns;
        seen.set(@intCast(item.node));
        var reader: Io.Reader = .fixed(trie[@intCast(item.node)..]);
        const terminal_size = try reader.takeLeb128(u64);
        if (terminal_size != 0) try names.append(arena, item.prefix);
        try reader.discardAll64(terminal_size); // The flags and address: not needed here.
        const children = try reader.takeByte();
        for (0..children) |_| {
            const edge = try reader.takeSentinel(0);
            const child = try reader.takeLeb128(u64);
            try pending.append(arena, .{ .node = child, .prefix = try std.mem.concat(arena, u8, &.{ item.prefix, edge }) });
        }
    }
    return names.items;
}

/// Without an export trie: the external symbols defined in a section.
fn symbolTableNames(arena: Allocator, data: []const u8, table: macho.symtab_command) ![]const []const u8 {
    const symbols = try bytesAt(data, table.symoff, @as(u64, table.nsyms) * @sizeOf(macho.nlist_64));
    const strings = try bytesAt(data, table.stroff, table.strsize);
    var names: std.ArrayList([]const u8) = .empty;
    var reader: Io.Reader = .fixed(symbols);
    for (0..table.nsyms) |_| {
        const symbol = try reader.takeStruct(macho.nlist_64, .little);
        const bits = symbol.n_type.bits;
        if (bits.is_stab == 0 and bits.ext and bits.type == .sect) try names.append(arena, try stringAt(strings, symbol.n_strx));
    }
    return names.items;
}

fn readPe(arena: Allocator, data: []const u8) !Binary {
    // std.coff reads headers in the host's byte order, which is PE's on every little-endian
    // host: a big-endian one would misread them, so it does not build there.
    comptime std.debug.assert(@import("builtin").cpu.arch.endian() == .little);
    std.debug.assert(std.mem.startsWith(u8, data, "MZ")); // readBinary looked.
    const image = try peImage(data);
    const header = image.getHeader();
    const sections = image.getSectionHeaders();
    const directories = image.getDataDirectories();
    const export_index = @backingInt(coff.IMAGE.DIRECTORY_ENTRY.EXPORT);
    const import_index = @backingInt(coff.IMAGE.DIRECTORY_ENTRY.IMPORT);
    const export_names = if (export_index < directories.len) try peExportNames(arena, data, sections, directories[export_index]) else &.{};
    const needed = if (import_index < directories.len) try peImportNames(arena, data, sections, directories[import_index]) else &.{};
    // PE exports do not say code from data; the DLLs built here export code only.
    const exports = try arena.alloc(Symbol, export_names.len);
    for (exports, export_names) |*symbol, name| symbol.* = .{ .name = name, .is_function = true };
    const characteristics: u16 = @bitCast(header.flags);
    return .{
        .format = .coff,
        .description = try std.fmt.allocPrint(arena, "PE32+ machine 0x{x} characteristics 0x{x}", .{ @backingInt(header.machine), characteristics }),
        .shared = header.flags.DLL,
        .machine = @backingInt(header.machine),
        .exports = exports,
        .needed = needed,
    };
}

/// std.coff.Coff over a PE32+ image, once the file is known to be long enough for every
/// header that its getters read: they slice without checking.
fn peImage(data: []const u8) !coff.Coff {
    const signature_offset = std.mem.readInt(u32, (try bytesAt(data, coff.pe_pointer_offset, 4))[0..4], .little);
    _ = try bytesAt(data, signature_offset, coff.pe_signature.len + @sizeOf(coff.Header));
    const image = try coff.Coff.init(data, false);
    if (!image.is_image) return error.NoPeSignature;
    const header = image.getHeader();
    if (header.size_of_optional_header < @sizeOf(coff.OptionalHeader.@"PE32+")) return error.NotPe32Plus;
    const optional_offset = image.coff_header_offset + @sizeOf(coff.Header);
    const sections_size = @as(u64, header.number_of_sections) * @sizeOf(coff.SectionHeader);
    _ = try bytesAt(data, optional_offset, header.size_of_optional_header + sections_size);
    if (image.getOptionalHeader().magic != .@"PE32+") return error.NotPe32Plus;
    const directories_size = @as(u64, image.getNumberOfDataDirectories()) * @sizeOf(coff.ImageDataDirectory);
    if (@sizeOf(coff.OptionalHeader.@"PE32+") + directories_size > header.size_of_optional_header) return error.DataDirectoriesPastTheHeader;
    return image;
}

/// The file's bytes from a relative virtual address on. Hand-written: std.coff maps an
/// address to the file only inside getPdbPath.
fn bytesAtAddress(data: []const u8, sections: []align(1) const coff.SectionHeader, address: u32) ![]const u8 {
    for (sections) |section| {
        const size = @max(section.virtual_size, section.size_of_raw_data);
        if (address < section.virtual_address or address - section.virtual_address >= size) continue;
        const offset = @as(u64, section.pointer_to_raw_data) + (address - section.virtual_address);
        return bytesAt(data, offset, data.len -| offset);
    }
    return error.AddressInNoSection;
}

/// The export directory's names. Hand-written over std.coff's records, which it has no
/// walker for.
fn peExportNames(arena: Allocator, data: []const u8, sections: []align(1) const coff.SectionHeader, directory: coff.ImageDataDirectory) ![]const []const u8 {
    if (directory.size == 0) return &.{};
    var table_reader: Io.Reader = .fixed(try bytesAtAddress(data, sections, directory.virtual_address));
    const table = try table_reader.takeStruct(coff.ExportDirectoryTable, .little);
    var pointers: Io.Reader = .fixed(try bytesAtAddress(data, sections, table.name_pointer_table_rva));
    var names: std.ArrayList([]const u8) = .empty;
    for (0..table.number_of_names) |_| {
        const name_address = try pointers.takeInt(u32, .little);
        try names.append(arena, try stringAt(try bytesAtAddress(data, sections, name_address), 0));
    }
    return names.items;
}

/// The import directory's DLL names; a zeroed entry ends it. Hand-written over std.coff's
/// records; a table with no end runs into the end of the file.
fn peImportNames(arena: Allocator, data: []const u8, sections: []align(1) const coff.SectionHeader, directory: coff.ImageDataDirectory) ![]const []const u8 {
    if (directory.size == 0) return &.{};
    var reader: Io.Reader = .fixed(try bytesAtAddress(data, sections, directory.virtual_address));
    var names: std.ArrayList([]const u8) = .empty;
    while (true) {
        const entry = try reader.takeStruct(coff.ImportDirectoryEntry, .little);
        if (entry.name_rva == 0) return names.items;
        try names.append(arena, try stringAt(try bytesAtAddress(data, sections, entry.name_rva), 0));
    }
}

// --- Small helpers --------------------------------------------------------------------------

fn contains(names: []const []const u8, name: []const u8) bool {
    for (names) |candidate| if (std.mem.eql(u8, candidate, name)) return true;
    return false;
}

/// The names of `names` that `others` lacks, sorted, each once.
fn namesNotIn(arena: Allocator, names: []const []const u8, others: []const []const u8) Allocator.Error![]const []const u8 {
    var result: std.ArrayList([]const u8) = .empty;
    for (names) |name| {
        if (!contains(others, name) and !contains(result.items, name)) try result.append(arena, name);
    }
    std.mem.sort([]const u8, result.items, {}, lessThan);
    return result.items;
}

fn lessThan(_: void, a: []const u8, b: []const u8) bool {
    return std.mem.lessThan(u8, a, b);
}

/// "2.17" for 2.17.0, as glibc names its versions; "2.2.5" keeps its patch.
fn shortVersion(arena: Allocator, version: SemanticVersion) Allocator.Error![]const u8 {
    if (version.patch == 0) return std.fmt.allocPrint(arena, "{d}.{d}", .{ version.major, version.minor });
    return std.fmt.allocPrint(arena, "{d}.{d}.{d}", .{ version.major, version.minor, version.patch });
}

fn jsonStrings(arena: Allocator, items: []const []const u8) Allocator.Error!std.json.Value {
    var array: std.json.Array = .init(arena);
    for (items) |item| try array.append(.{ .string = item });
    return .{ .array = array };
}

fn jsonText(arena: Allocator, value: std.json.Value) Allocator.Error![]const u8 {
    return std.json.Stringify.valueAlloc(arena, value, .{});
}

fn isEmpty(value: std.json.Value) bool {
    return switch (value) {
        .null => true,
        .object => |object| object.count() == 0,
        .array => |array| array.items.len == 0,
        else => false,
    };
}

/// JSON equality: objects regardless of key order, as JSON means them.
fn jsonEqual(a: std.json.Value, b: std.json.Value) bool {
    if (std.meta.activeTag(a) != std.meta.activeTag(b)) return false;
    return switch (a) {
        .null => true,
        .bool => |value| value == b.bool,
        .integer => |value| value == b.integer,
        .float => |value| value == b.float,
        .number_string => |value| std.mem.eql(u8, value, b.number_string),
        .string => |value| std.mem.eql(u8, value, b.string),
        .array => |array| {
            if (array.items.len != b.array.items.len) return false;
            for (array.items, b.array.items) |item, other| if (!jsonEqual(item, other)) return false;
            return true;
        },
        .object => |object| {
            if (object.count() != b.object.count()) return false;
            var entries = object.iterator();
            while (entries.next()) |entry| {
                const other = b.object.get(entry.key_ptr.*) orelse return false;
                if (!jsonEqual(entry.value_ptr.*, other)) return false;
            }
            return true;
        },
    };
}

// --- Tests ----------------------------------------------------------------------------------

const testing = std.testing;

test "the functions are exactly abi.zig's pub declarations that are refscope_* functions" {
    inline for (@typeInfo(abi).@"struct".decl_names) |name| {
        const is_function = @typeInfo(@TypeOf(@field(abi, name))) == .@"fn";
        try testing.expectEqual(std.mem.startsWith(u8, name, "refscope_") and is_function, contains(functions, name));
    }
    try testing.expect(functions.len != 0);
}

test "glibcVersion reads GLIBC_x.y[.z], orders by version, and skips other names" {
    const old = glibcVersion("GLIBC_2.2.5").?;
    const new = glibcVersion("GLIBC_2.17").?;
    try testing.expectEqualStrings("2.17", new.text);
    try testing.expectEqual(std.math.Order.lt, old.version.order(new.version));
    try testing.expectEqual(std.math.Order.gt, glibcVersion("GLIBC_2.18").?.version.order(new.version));
    try testing.expect(glibcVersion("GLIBC_PRIVATE") == null);
    try testing.expect(glibcVersion("GCC_3.0") == null);
    const text = try shortVersion(testing.allocator, new.version);
    defer testing.allocator.free(text);
    try testing.expectEqualStrings("2.17", text);
}

test "Expected.of takes format, machine, C library and version floors from the triple" {
    const gnu: Expected = .of(&try resolveTarget(testing.io, "x86_64-linux-gnu.2.17"));
    try testing.expectEqual(std.Target.ObjectFormat.elf, gnu.format);
    try testing.expectEqual(@as(?u32, 62), gnu.machine); // EM_X86_64
    try testing.expectEqualStrings("libc.so.6", gnu.libc.?);
    try testing.expectEqual(std.math.Order.eq, gnu.glibc_max.?.order(.{ .major = 2, .minor = 17, .patch = 0 }));
    try testing.expect(gnu.macos_min == null);

    const musl: Expected = .of(&try resolveTarget(testing.io, "aarch64-linux-musl"));
    try testing.expectEqual(@as(?u32, 183), musl.machine); // EM_AARCH64
    try testing.expectEqualStrings("libc.so", musl.libc.?);
    try testing.expect(musl.glibc_max == null);

    const macos: Expected = .of(&try resolveTarget(testing.io, "aarch64-macos.11.0"));
    try testing.expectEqual(std.Target.ObjectFormat.macho, macos.format);
    try testing.expectEqual(@as(?u32, 0x0100000C), macos.machine); // CPU_TYPE_ARM64
    try testing.expectEqualStrings("/usr/lib/libSystem.B.dylib", macos.libc.?);
    try testing.expectEqual(std.math.Order.eq, macos.macos_min.?.order(.{ .major = 11, .minor = 0, .patch = 0 }));

    const windows: Expected = .of(&try resolveTarget(testing.io, "x86_64-windows-gnu"));
    try testing.expectEqual(std.Target.ObjectFormat.coff, windows.format);
    try testing.expectEqual(@as(?u32, 0x8664), windows.machine); // IMAGE_FILE_MACHINE_AMD64
    try testing.expect(windows.libc == null and windows.glibc_max == null);

    try testing.expectError(error.UnknownOperatingSystem, resolveTarget(testing.io, "x86_64-windoze-gnu"));
    try testing.expectError(error.TargetNotExplicit, resolveTarget(testing.io, "native"));
}

test "npmNames gives Node's names for each kind of target, and none for an unknown one" {
    const cases = [_]struct { []const u8, []const u8, []const u8, ?[]const u8 }{
        .{ "x86_64-linux-gnu.2.17", "linux", "x64", "glibc" },
        .{ "aarch64-linux-musl", "linux", "arm64", "musl" },
        .{ "x86_64-macos.11.0", "darwin", "x64", null },
        .{ "x86_64-windows-gnu", "win32", "x64", null },
    };
    for (cases) |case| {
        const names = npmNames(&try resolveTarget(testing.io, case[0])).?;
        try testing.expectEqualStrings(case[1], names.os);
        try testing.expectEqualStrings(case[2], names.cpu);
        if (case[3]) |libc| try testing.expectEqualStrings(libc, names.libc.?) else try testing.expect(names.libc == null);
    }
    try testing.expect(npmNames(&try resolveTarget(testing.io, "riscv64-linux-gnu")) == null);
}

test "isSystemLibrary allows each platform its own libraries only" {
    const gnu = try resolveTarget(testing.io, "x86_64-linux-gnu.2.17");
    try testing.expect(isSystemLibrary(&gnu, "libc.so.6"));
    try testing.expect(isSystemLibrary(&gnu, "ld-linux-x86-64.so.2"));
    try testing.expect(!isSystemLibrary(&gnu, "ld-linux-aarch64.so.1"));
    try testing.expect(!isSystemLibrary(&gnu, "libc.so"));
    const musl = try resolveTarget(testing.io, "x86_64-linux-musl");
    try testing.expect(isSystemLibrary(&musl, "libc.so"));
    try testing.expect(!isSystemLibrary(&musl, "libc.so.6"));
    const macos = try resolveTarget(testing.io, "x86_64-macos.11.0");
    try testing.expect(isSystemLibrary(&macos, "/usr/lib/libSystem.B.dylib"));
    try testing.expect(!isSystemLibrary(&macos, "/usr/local/lib/libz.dylib"));
    const windows = try resolveTarget(testing.io, "x86_64-windows-gnu");
    try testing.expect(isSystemLibrary(&windows, "KERNEL32.dll"));
    try testing.expect(isSystemLibrary(&windows, "api-ms-win-crt-heap-l1-1-0.dll"));
    try testing.expect(!isSystemLibrary(&windows, "msvcrt.dll"));
    try testing.expect(!isSystemLibrary(&windows, "api-ms-win-crt-heap-l1-1-0.so"));
}

test "exportTrieNames reads every terminal of a trie, and refuses one that loops" {
    var arena_state: std.heap.ArenaAllocator = .init(testing.allocator);
    defer arena_state.deinit();
    const arena = arena_state.allocator();
    // Root (no terminal) -"_a"-> node 6 (terminal) -"b"-> node 15, -"c"-> node 18 (terminals).
    const trie = "\x00\x01_a\x00\x06" ++ "\x01\x00\x02b\x00\x0fc\x00\x12" ++ "\x01\x00\x00" ++ "\x01\x00\x00";
    const names = try namesNotIn(arena, try exportTrieNames(arena, trie), &.{});
    try testing.expectEqual(@as(usize, 3), names.len);
    for ([_][]const u8{ "_a", "_ab", "_ac" }, names) |expected, name| try testing.expectEqualStrings(expected, name);
    try testing.expectError(error.ExportTrieLoopsOrOverruns, exportTrieNames(arena, "\x00\x01x\x00\x00"));
    try testing.expectError(error.ExportTrieLoopsOrOverruns, exportTrieNames(arena, "\x00\x01x\x00\x7f"));
}

test "machOVersion unpacks LC_BUILD_VERSION's xxxx.yy.zz" {
    try testing.expectEqual(std.math.Order.eq, machOVersion(0x000B0000).order(.{ .major = 11, .minor = 0, .patch = 0 }));
    try testing.expectEqual(std.math.Order.eq, machOVersion(0x000A0F02).order(.{ .major = 10, .minor = 15, .patch = 2 }));
}

test "readBinary refuses short and unknown files with an error, not a panic" {
    var arena_state: std.heap.ArenaAllocator = .init(testing.allocator);
    defer arena_state.deinit();
    const arena = arena_state.allocator();
    try testing.expectError(error.NotElfMachO64OrPe, readBinary(arena, ""));
    try testing.expectError(error.NotElfMachO64OrPe, readBinary(arena, "#!/bin/sh\n"));
    try testing.expectError(error.EndOfStream, readBinary(arena, elf.MAGIC ++ "\x02\x01\x01"));
    try testing.expectError(error.EndOfStream, readBinary(arena, "\xcf\xfa\xed\xfe"));
    try testing.expectError(error.PastTheEndOfTheFile, readBinary(arena, "MZ"));
    var pe: [0x40]u8 = @splat(0);
    pe[0] = 'M';
    pe[1] = 'Z';
    pe[coff.pe_pointer_offset] = 0x40; // The PE signature would be just past the end.
    try testing.expectError(error.PastTheEndOfTheFile, readBinary(arena, &pe));
}

test "namesNotIn gives the sorted difference, each name once; jsonEqual ignores key order" {
    var arena_state: std.heap.ArenaAllocator = .init(testing.allocator);
    defer arena_state.deinit();
    const arena = arena_state.allocator();
    const difference = try namesNotIn(arena, &.{ "c", "a", "b", "c" }, &.{"b"});
    try testing.expectEqual(@as(usize, 2), difference.len);
    try testing.expectEqualStrings("a", difference[0]);
    try testing.expectEqualStrings("c", difference[1]);

    const a = try std.json.parseFromSliceLeaky(std.json.Value, arena, "{\"x\": [1, \"y\"], \"z\": null}", .{});
    const b = try std.json.parseFromSliceLeaky(std.json.Value, arena, "{\"z\": null, \"x\": [1, \"y\"]}", .{});
    const c = try std.json.parseFromSliceLeaky(std.json.Value, arena, "{\"z\": null, \"x\": [\"y\", 1]}", .{});
    try testing.expect(jsonEqual(a, b));
    try testing.expect(!jsonEqual(a, c));
}
