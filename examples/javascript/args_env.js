// Prints argv and the environment in the order the runtime provides them, like examples/c/args_env.c.
// process.argv is [argv[0], this script, ARGS...], as in Node.
process.argv.forEach((arg, i) => console.log(`argv[${i}]=${arg}`));
for (const [key, value] of Object.entries(process.env)) console.log(`env:${key}=${value}`);
