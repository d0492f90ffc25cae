// TCP echo server for a keep. The listening socket is preopened by the keep; its fd is
// the index of NAME (argv[1], default "ingest") in the ':'-separated FD_NAMES.
// wasm32-wasi has no threads, so connections are served one after another: every byte
// received is written back until the peer closes; errors (EPIPE, ECONNRESET, ...) only
// end that connection.
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::wasi::io::FromRawFd;
use std::process::exit;

fn find_fd(name: &str) -> i32 {
    let names = match std::env::var("FD_NAMES") {
        Ok(names) => names,
        Err(_) => {
            eprintln!("echo_server: FD_NAMES is not set; no socket named '{}'", name);
            exit(1);
        }
    };
    match names.split(':').position(|n| n == name) {
        Some(index) => index as i32,
        None => {
            eprintln!("echo_server: no fd named '{}' in FD_NAMES={}", name, names);
            exit(1);
        }
    }
}

fn echo(mut stream: TcpStream) {
    let mut buf = [0u8; 16384];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "ingest".to_string());
    let fd = find_fd(&name);
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    eprintln!("echo_server: serving on fd {} ({})", fd, name);
    loop {
        match listener.accept() {
            Ok((stream, _)) => echo(stream),
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::ConnectionAborted) => {}
            Err(e) => {
                eprintln!("echo_server: accept: {}", e);
                exit(1);
            }
        }
    }
}
