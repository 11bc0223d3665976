//! Storage whose elements never move: a fixed directory of chunks, each a mapping of whole
//! pages, mapped as the storage grows and unmapped only by `deinit`.
//!
//! The table keeps its entries here so that a thread may reach an entry without the shard's
//! lock (`Table.retainFast`, `Table.releaseFast`): an entry's address stays valid while the
//! shard grows, and its memory is never freed under a reader. Giving memory back
//! (`giveBack`) maps fresh zero pages over each chunk instead of unmapping it: a concurrent
//! reader then sees the old contents or zeros, never a fault. So the all-zero value of `T`
//! must read as "no element" to such readers (an entry of generation 0, which no id names).
//!
//! Windows has no such remapping (a decommitted page faults), so there the memory stays
//! (`canGiveBack`).
//!
//! Growth (`append`) and `giveBack` are for the owner of the storage's lock; `at` reads the
//! directory atomically and may be called by any thread.

const std = @import("std");
const builtin = @import("builtin");
const assert = std.debug.assert;

pub fn Chunked(comptime T: type, comptime chunk_len: u32, comptime chunks_max: u32) type {
    return struct {
        const Self = @This();
        const Chunk = [chunk_len]T;
        pub const chunk_bytes = @sizeOf(Chunk);
        pub const len_max = chunk_len * chunks_max;
        pub const chunk_count_max = chunks_max;

        comptime {
            assert(std.math.isPowerOfTwo(chunk_len));
            // Whole pages on every platform the library builds for (16 KiB on Apple silicon),
            // so that a chunk can be remapped alone.
            assert(chunk_bytes % (16 * 1024) == 0);
        }

        /// Chunk `i` holds elements `i * chunk_len` up to the next chunk's. Written (once per
        /// chunk, release) by the lock's owner; read (acquire) by any thread.
        directory: [chunks_max]std.atomic.Value(?*Chunk) = @splat(.init(null)),
        /// Elements in use: every element at or past it is all zero. Changed by the lock's
        /// owner only.
        len: u32 = 0,
        /// Chunks mapped (at the start of the directory).
        chunks: u32 = 0,

        /// The element at `index`, which must be below `len`. The lock's owner only: the
        /// directory's only writer, so a plain read, which the compiler may merge with the
        /// next (an atomic one it may not, and the table's paths look an entry up often).
        pub fn at(storage: *Self, index: u32) *T {
            assert(index < storage.len);
            const chunk = storage.directory[index / chunk_len].raw.?;
            return &chunk[index % chunk_len];
        }

        /// The element at `index` for any thread, or null when its chunk is not mapped. It may
        /// be past `len` (then all zero), and may change under the caller: read it atomically.
        pub fn atConcurrent(storage: *Self, index: u32) ?*T {
            if (index >= len_max) return null;
            const chunk = storage.directory[index / chunk_len].load(.acquire) orelse return null;
            return &chunk[index % chunk_len];
        }

        /// Makes room for one more element (mapping a chunk if need be), so that `append`
        /// cannot fail. `error.Limit` when the storage is full.
        pub fn reserveOne(storage: *Self) error{ Limit, OutOfMemory }!void {
            if (storage.len == len_max) return error.Limit;
            if (storage.len < storage.chunks * chunk_len) return;
            assert(storage.len == storage.chunks * chunk_len);
            // Page-aligned: the page allocator maps whole pages.
            const memory = try std.heap.page_allocator.alignedAlloc(T, .fromByteUnits(std.heap.page_size_min), chunk_len);
            // Fresh pages are zero already (mmap, VirtualAlloc); this only states it for the
            // readers' contract, and touches no page.
            const chunk: *Chunk = memory[0..chunk_len];
            storage.directory[storage.chunks].store(chunk, .release);
            storage.chunks += 1;
        }

        /// The next element, all zero, at index `len` (returned). `reserveOne` made room.
        pub fn append(storage: *Self) u32 {
            const index = storage.len;
            assert(index < storage.chunks * chunk_len);
            storage.len += 1;
            return index;
        }

        /// Whether `giveBack` returns pages to the system here: not on Windows, nor where a
        /// page is larger than a chunk's multiple of 16 KiB (64 KiB pages on some arm64 Linux
        /// systems), since a mapping over a chunk would then reach past it.
        pub fn canGiveBack() bool {
            return builtin.os.tag != .windows and chunk_bytes % std.heap.pageSize() == 0;
        }

        /// Maps fresh zero pages over every chunk and empties the storage: its pages go back to
        /// the system, and its addresses stay valid. Only where `canGiveBack()`.
        pub fn giveBack(storage: *Self) void {
            assert(canGiveBack());
            for (storage.directory[0..storage.chunks]) |*entry| {
                const chunk = entry.load(.monotonic).?;
                // The system refused new pages: keep these, zeroed as the contract needs.
                if (!remapZero(chunk)) @memset(std.mem.asBytes(chunk), 0);
            }
            storage.len = 0;
        }

        /// Maps fresh zero pages over the chunk: atomic for other threads, each of its pages
        /// either the old one or a zero one. False if the system refused.
        fn remapZero(chunk: *Chunk) bool {
            if (comptime builtin.os.tag == .windows) {
                unreachable; // `canGiveBack` is false there.
            } else {
                const bytes: [*]align(std.heap.page_size_min) u8 = @ptrCast(@alignCast(chunk));
                const mapped = std.posix.mmap(bytes, chunk_bytes, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .FIXED = true }, -1, 0) catch return false;
                assert(mapped.ptr == bytes);
                return true;
            }
        }

        /// Bytes of pages the elements in use may occupy: whole chunks, and the touched pages
        /// of the last.
        pub fn residentBytes(storage: *const Self) u64 {
            const full: u64 = storage.len / chunk_len;
            const rest: u64 = (storage.len % chunk_len) * @sizeOf(T);
            return full * chunk_bytes + std.mem.alignForward(u64, rest, std.heap.page_size_min);
        }

        pub fn deinit(storage: *Self) void {
            for (storage.directory[0..storage.chunks]) |*entry| {
                std.heap.page_allocator.free(entry.load(.monotonic).?);
            }
            storage.* = undefined;
        }
    };
}
