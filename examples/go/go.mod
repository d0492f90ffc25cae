module enarx.example/wasm

go 1.21
