//! Print argv and the environment, in the order the runtime provides them.
use std::io::{self, Write};
use std::os::wasi::ffi::OsStrExt;

fn main() -> io::Result<()> {
    let mut out = io::stdout().lock();
    for (i, arg) in std::env::args_os().enumerate() {
        out.write_all(format!("argv[{}]=", i).as_bytes())?;
        out.write_all(arg.as_bytes())?;
        out.write_all(b"\n")?;
    }
    for (key, value) in std::env::vars_os() {
        out.write_all(b"env:")?;
        out.write_all(key.as_bytes())?;
        out.write_all(b"=")?;
        out.write_all(value.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
