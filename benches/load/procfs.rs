//! What `/proc` tells about the server process (peak RSS, CPU time) and the
//! harness itself (CPU time), to say what bounds a figure.

use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Peak resident set size (`VmHWM`, since the process started) in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmHWM:")
}

/// Current resident set size (`VmRSS`) in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// User + system CPU seconds consumed so far by `pid` (all threads).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// CPU use of the server (when its PID is known) and of the harness over an interval.
pub struct CpuMeter {
    server: Option<u32>,
    started: Instant,
    server_start: Option<f64>,
    self_start: Option<f64>,
}

/// CPU use over an interval, in percent of one core.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    /// The server's CPU use, when its PID was given.
    pub server: Option<f64>,
    /// The harness's own CPU use.
    pub client: Option<f64>,
}

impl CpuMeter {
    /// Starts measuring now.
    pub fn start(server: Option<u32>) -> Self {
        CpuMeter {
            server,
            started: Instant::now(),
            server_start: server.and_then(cpu_seconds),
            self_start: cpu_seconds(std::process::id()),
        }
    }

    /// CPU use since [`CpuMeter::start`].
    pub fn stop(self) -> CpuUse {
        let wall = self
            .started
            .elapsed()
            .max(Duration::from_millis(1))
            .as_secs_f64();
        let pct = |before: Option<f64>, after: Option<f64>| Some((after? - before?) / wall * 100.0);
        CpuUse {
            server: pct(self.server_start, self.server.and_then(cpu_seconds)),
            client: pct(self.self_start, cpu_seconds(std::process::id())),
        }
    }
}
