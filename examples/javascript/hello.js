// Prints the same line as every other language's hello example.
console.log("Hello, world!");
