// Minimal HTTP/1.1 server for a keep. The listening socket is preopened by the keep;
// its fd is the index of NAME (argv[1], default "ingest") in the ':'-separated FD_NAMES.
// Connections are served one at a time: read the request up to the end of its headers,
// answer "Hello from a keep! You asked for PATH\n" (PATH from the request line) with
// Connection: close, then close. Requests whose headers exceed 8 KiB get a 431.
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::wasi::io::FromRawFd;
use std::process::exit;

const MAX_REQUEST: usize = 8192;

fn find_fd(name: &str) -> i32 {
    let names = match std::env::var("FD_NAMES") {
        Ok(names) => names,
        Err(_) => {
            eprintln!("http_server: FD_NAMES is not set; no socket named '{}'", name);
            exit(1);
        }
    };
    match names.split(':').position(|n| n == name) {
        Some(index) => index as i32,
        None => {
            eprintln!("http_server: no fd named '{}' in FD_NAMES={}", name, names);
            exit(1);
        }
    }
}

fn has_end_of_headers(req: &[u8]) -> bool {
    req.windows(4).any(|w| w == b"\r\n\r\n")
}

fn serve(mut stream: TcpStream) {
    let mut req = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    while !has_end_of_headers(&req) {
        if req.len() >= MAX_REQUEST {
            let _ = stream.write_all(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\
                  Connection: close\r\n\r\n",
            );
            return;
        }
        let want = buf.len().min(MAX_REQUEST - req.len());
        match stream.read(&mut buf[..want]) {
            Ok(0) => return, // peer went away before finishing its request
            Ok(n) => req.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
    // Request line: METHOD SP PATH SP VERSION
    let line_end = req.windows(2).position(|w| w == b"\r\n").unwrap_or(req.len());
    let path = req[..line_end]
        .split(|&b| b == b' ')
        .nth(1)
        .filter(|p| !p.is_empty())
        .unwrap_or(b"/");
    let mut body = b"Hello from a keep! You asked for ".to_vec();
    body.extend_from_slice(path);
    body.push(b'\n');
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    let _ = stream.write_all(&response); // EPIPE, ECONNRESET, ...: just drop the client
}

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "ingest".to_string());
    let fd = find_fd(&name);
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    eprintln!("http_server: serving on fd {} ({})", fd, name);
    loop {
        match listener.accept() {
            Ok((stream, _)) => serve(stream),
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::ConnectionAborted) => {}
            Err(e) => {
                eprintln!("http_server: accept: {}", e);
                exit(1);
            }
        }
    }
}
