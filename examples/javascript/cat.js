// Copies stdin (UTF-8 text) to stdout, then reports on stderr what it copied.
const text = process.stdin.read();
process.stdout.write(text);
console.error(`copied ${text.length} characters`);
