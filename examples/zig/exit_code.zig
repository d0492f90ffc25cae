//! Exit with the status given as argv[1] (default 0).
const std = @import("std");

pub fn main(init: std.process.Init) !void {
    const args = try init.minimal.args.toSlice(init.arena.allocator());
    const code: i32 = if (args.len > 1) std.fmt.parseInt(i32, args[1], 10) catch 0 else 0;
    var buf: [64]u8 = undefined;
    const msg = try std.fmt.bufPrint(&buf, "exiting with {d}\n", .{code});
    try std.Io.File.stderr().writeStreamingAll(init.io, msg);
    // Hand the status to the runtime unchanged (like C's exit()), rather than
    // truncating it to the u8 that `main` can return.
    std.os.wasi.proc_exit(@bitCast(code));
}
