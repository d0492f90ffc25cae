//! Copy stdin to stdout byte for byte until EOF.
const std = @import("std");

pub fn main(init: std.process.Init) !void {
    const io = init.io;
    const stdin = std.Io.File.stdin();
    const stdout = std.Io.File.stdout();
    var buf: [64 * 1024]u8 = undefined;
    while (true) {
        const n = stdin.readStreaming(io, &.{&buf}) catch |err| switch (err) {
            error.EndOfStream => return,
            else => |e| return e,
        };
        try stdout.writeStreamingAll(io, buf[0..n]);
    }
}
