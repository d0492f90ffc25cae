// A JavaScript program in a keep: QuickJS-ng compiled to wasm32-wasi runs it from a read-only preopened
// directory. It reads its configuration the Enarx way (FD_NAMES), digests its stdin, and greets.
async function main() {
  const input = process.stdin.read();
  let hash = 0x811c9dc5; // FNV-1a over the UTF-16 code units: no crypto module in this small runtime
  for (let i = 0; i < input.length; i++) hash = Math.imul(hash ^ input.charCodeAt(i), 0x01000193) >>> 0;
  const answer = await Promise.resolve(6 * 7);
  console.log(JSON.stringify({
    greeting: "Hello from JavaScript in a keep!",
    engine: "QuickJS-ng",
    argv: process.argv.slice(2),
    fd_names: (process.env.FD_NAMES || "").split(":"),
    stdin_chars: input.length,
    stdin_fnv1a: hash.toString(16).padStart(8, "0"),
    answer,
  }));
}
main();
