//! Print argv and the environment, in the order the runtime provides them.
const std = @import("std");

pub fn main(init: std.process.Init) !void {
    var buf: [4096]u8 = undefined;
    var stdout = std.Io.File.stdout().writerStreaming(init.io, &buf);
    const out = &stdout.interface;

    const args = try init.minimal.args.toSlice(init.arena.allocator());
    for (args, 0..) |arg, i| try out.print("argv[{d}]={s}\n", .{ i, arg });

    // Environ.Map is insertion-ordered, so this follows the runtime's order.
    var it = init.environ_map.iterator();
    while (it.next()) |entry| try out.print("env:{s}={s}\n", .{ entry.key_ptr.*, entry.value_ptr.* });

    try out.flush();
}
