//! The `registry-server` binary against hostile connections: idle and
//! trickling clients are cut by their timeouts, a stalled upload body ends
//! its request and rolls back, so does a stalled body of any other kind, connections beyond the cap wait without
//! stopping the others, and running out of file descriptors neither stops
//! the server for good nor makes it spin.
//!
//! Raw TCP on purpose: HTTP clients would not misbehave this way.
#![cfg(target_os = "linux")]

#[path = "common/examples.rs"]
mod examples;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use examples::ServerProcess;

/// Starts the server without auth and with `args`; its `host:port`.
fn start(dir: &Path, args: &[&str]) -> (ServerProcess, String) {
    let mut all = vec!["--no-auth"];
    all.extend_from_slice(args);
    let (server, url) = ServerProcess::start(dir, &all);
    let addr = url.strip_prefix("http://").expect("http URL").to_owned();
    (server, addr)
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    stream
}

/// Reads one response (head and a `Content-Length` body): status and text.
/// `None` when the connection closed or the read timed out first.
fn read_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = find(&data, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                let status = head.split(' ').nth(1)?.parse().ok()?;
                let text = String::from_utf8_lossy(&data[..end + 4 + length]).into_owned();
                return Some((status, text));
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends a body-less keep-alive request and reads its response.
fn get(stream: &mut TcpStream, path: &str) -> Option<(u16, String)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    read_response(stream)
}

/// Waits until the server closes `stream` (EOF or reset); how long it took,
/// or `None` if it was still open after `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(started.elapsed()),
        }
    }
}

/// The header of `name` in a response's text.
fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (_server, addr) = start(
        tmp.path(),
        &[
            "--idle-timeout-secs",
            "2",
            "--header-read-timeout-secs",
            "30",
        ],
    );
    // One that never sends a byte, one idle after a keep-alive request.
    let mut silent = connect(&addr);
    let mut kept = connect(&addr);
    let (status, _) = get(&mut kept, "/v2/").expect("a response");
    assert_eq!(status, 200);
    // Still open within the timeout: a second request on it works.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(&mut kept, "/v2/").expect("a response").0, 200);
    for stream in [&mut silent, &mut kept] {
        let after = closed_within(stream, Duration::from_secs(15))
            .expect("an idle connection is closed by the idle timeout");
        assert!(after < Duration::from_secs(10), "closed after {after:?}");
    }
}

#[test]
fn trickled_headers_are_cut_after_the_header_read_timeout() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (_server, addr) = start(
        tmp.path(),
        &[
            "--idle-timeout-secs",
            "60",
            "--header-read-timeout-secs",
            "2",
        ],
    );
    let mut stream = connect(&addr);
    let mut writer = stream.try_clone().expect("clone");
    let started = Instant::now();
    // 40 bytes at one every 300 ms: 12 s for the whole head.
    let trickler = std::thread::spawn(move || {
        for byte in b"GET /v2/ HTTP/1.1\r\nHost: test\r\nX-Slow: 1\r\n\r\n" {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let after = closed_within(&mut stream, Duration::from_secs(20))
        .expect("a trickling client is cut by the header-read timeout");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "cut only after {after:?}, the whole head had nearly arrived"
    );
    trickler.join().expect("trickler");
}

#[test]
fn a_stalled_patch_body_ends_the_request_and_rolls_back() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (_server, addr) = start(tmp.path(), &["--body-idle-timeout-secs", "2"]);
    let mut stream = connect(&addr);
    stream
        .write_all(
            b"POST /v2/ns/app/blobs/uploads/ HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("write");
    let (status, response) = read_response(&mut stream).expect("a response");
    assert_eq!(status, 202, "{response}");
    let location = header(&response, "location").expect("Location").to_owned();
    let patch = |length: usize| {
        format!("PATCH {location} HTTP/1.1\r\nHost: test\r\nContent-Length: {length}\r\n\r\n")
    };
    stream.write_all(patch(100).as_bytes()).expect("write");
    stream.write_all(&[1u8; 100]).expect("write");
    let (status, response) = read_response(&mut stream).expect("a response");
    assert_eq!(status, 202, "{response}");
    assert_eq!(header(&response, "range"), Some("0-99"));

    // 200 of 1000 bytes, then nothing.
    let started = Instant::now();
    stream.write_all(patch(1000).as_bytes()).expect("write");
    stream.write_all(&[2u8; 200]).expect("write");
    let (status, response) = read_response(&mut stream).expect("the stalled request is answered");
    assert_eq!(status, 408, "{response}");
    assert!(response.contains("BLOB_UPLOAD_INVALID"), "{response}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let mut other = connect(&addr);
    let (status, response) = get(&mut other, &location).expect("a response");
    assert_eq!(status, 204, "{response}");
    assert_eq!(
        header(&response, "range"),
        Some("0-99"),
        "the session is where it was before the stalled request"
    );
}

#[test]
fn stalled_bodies_of_every_kind_are_answered_and_free_their_connections() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (_server, addr) = start(
        tmp.path(),
        &["--body-idle-timeout-secs", "2", "--max-connections", "4"],
    );
    // As many stalled requests as the server takes connections: headers
    // and the start of a body, then nothing. Each kind of body reader.
    let stalled = [
        (
            "POST /v2/token",
            "application/x-www-form-urlencoded",
            "grant_type=",
            "UNSUPPORTED",
        ),
        (
            "PUT /v2/ns/app/manifests/v1",
            "application/vnd.oci.image.manifest.v1+json",
            "{",
            "MANIFEST_INVALID",
        ),
        (
            "POST /apis/admin/v1/users",
            "application/json",
            "{\"name\":",
            "UNSUPPORTED",
        ),
        (
            "POST /apis/admin/v1/prune",
            "application/json",
            "{",
            "UNSUPPORTED",
        ),
    ];
    let started = Instant::now();
    let mut streams: Vec<TcpStream> = stalled
        .iter()
        .map(|(request, content_type, start, _)| {
            let mut stream = connect(&addr);
            let head = format!(
                "{request} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\nContent-Length: 1000\r\n\r\n{start}"
            );
            stream.write_all(head.as_bytes()).expect("write");
            stream
        })
        .collect();
    for (stream, (request, _, _, code)) in streams.iter_mut().zip(&stalled) {
        let (status, response) = read_response(stream).expect("the stalled request is answered");
        assert_eq!(status, 408, "{request}: {response}");
        assert!(response.contains(code), "{request}: {response}");
        assert!(
            response.contains("no byte of the request body arrived for 2 s"),
            "{response}"
        );
        assert_eq!(header(&response, "connection"), Some("close"), "{response}");
        assert!(
            closed_within(stream, Duration::from_secs(5)).is_some(),
            "{request}: the connection stayed open"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    // The four slots are free again.
    let mut next = connect(&addr);
    assert_eq!(get(&mut next, "/v2/").expect("a response").0, 200);
}

#[test]
fn connections_beyond_the_cap_wait_without_stopping_the_others() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (_server, addr) = start(tmp.path(), &["--max-connections", "4"]);
    let mut open: Vec<TcpStream> = (0..4).map(|_| connect(&addr)).collect();
    for stream in &mut open {
        assert_eq!(get(stream, "/v2/").expect("a response").0, 200);
    }
    // The fifth is queued by the kernel, not served...
    let mut fifth = connect(&addr);
    fifth
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("read timeout");
    assert!(
        get(&mut fifth, "/v2/").is_none(),
        "a connection beyond the cap was served at once"
    );
    // ... while the four keep being answered.
    for stream in &mut open {
        assert_eq!(get(stream, "/v2/").expect("a response").0, 200);
    }
    // One closes: the fifth gets its answer.
    drop(open.pop());
    fifth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let (status, _) = read_response(&mut fifth).expect("served once a slot is free");
    assert_eq!(status, 200);
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name (which may hold spaces): state is 3rd.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn at_the_file_descriptor_limit_the_server_pauses_accepting_and_recovers() {
    const LIMIT: usize = 96;
    let tmp = tempfile::tempdir().expect("temp dir");
    let plain = ServerProcess::command(
        tmp.path(),
        &[
            "--no-auth",
            "--idle-timeout-secs",
            "3",
            "--max-connections",
            "1000",
        ],
    );
    // `ulimit -n` in a shell that then becomes the server: soft and hard.
    let mut limited = Command::new("sh");
    limited
        .arg("-c")
        .arg(format!("ulimit -n {LIMIT} && exec \"$0\" \"$@\""))
        .arg(plain.get_program())
        .args(plain.get_args());
    for (key, value) in plain.get_envs() {
        match value {
            Some(value) => limited.env(key, value),
            None => limited.env_remove(key),
        };
    }
    limited
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let (server, url) = ServerProcess::spawn(limited);
    let addr = url.strip_prefix("http://").expect("http URL").to_owned();
    let pid = server.child.id();

    // More connections than descriptors are left.
    let spare = LIMIT.saturating_sub(open_fds(pid));
    let mut clients: Vec<TcpStream> = (0..spare + 20).map(|_| connect(&addr)).collect();
    let cpu_before = cpu_ticks(pid);
    let window = Instant::now();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        open_fds(pid) >= LIMIT - 2,
        "the test did not reach the limit: {} of {LIMIT} open",
        open_fds(pid)
    );
    // A connection it has is still answered.
    assert_eq!(
        get(&mut clients[0], "/v2/")
            .expect("answered at the limit")
            .0,
        200
    );
    // The idle timeout frees descriptors (the clients stay connected): a new
    // connection, queued behind the rest, is answered.
    let mut late = connect(&addr);
    late.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let (status, _) = get(&mut late, "/v2/").expect("answered once descriptors are free");
    assert_eq!(status, 200);

    let ticks = cpu_ticks(pid) - cpu_before;
    let wall = window.elapsed().as_secs_f64();
    // Clock ticks are 1/100 s on Linux; a busy `accept` loop would burn a
    // whole core for the window.
    let cpu = ticks as f64 / 100.0;
    assert!(
        cpu < wall * 0.4,
        "{cpu:.2} s of CPU in {wall:.2} s at the fd limit: accept is spinning\n{}",
        server.printed()
    );
    let logged = server
        .printed()
        .matches("cannot accept connections")
        .count();
    assert!(
        (1..=2).contains(&logged),
        "expected one log line per episode, got {logged}:\n{}",
        server.printed()
    );
    drop(clients);
}
