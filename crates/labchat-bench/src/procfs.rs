//! What the bench reads about processes from /proc: resident memory and CPU time of the server
//! (given by pid) and of the generator itself, the load average, and the open-file limit.

use std::time::Duration;

use serde::Serialize;

use crate::BenchError;

/// Clock ticks per second of `utime`/`stime` in /proc/PID/stat (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

fn read(path: &str) -> Result<String, BenchError> {
    std::fs::read_to_string(path).map_err(|source| BenchError::Io { context: format!("read {path}"), source })
}

/// Resident set size of process `pid`, in KiB (VmRSS of /proc/PID/status).
pub fn rss_kib(pid: u32) -> Result<u64, BenchError> {
    let status = read(&format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| BenchError::Protocol(format!("no VmRSS in /proc/{pid}/status")))
}

/// User plus system CPU time of process `pid` (all its threads), from /proc/PID/stat.
pub fn cpu_time(pid: u32) -> Result<Duration, BenchError> {
    parse_stat_cpu(&read(&format!("/proc/{pid}/stat"))?)
        .ok_or_else(|| BenchError::Protocol(format!("cannot parse /proc/{pid}/stat")))
}

/// Summed resident set size of `pids`, in KiB; `None` when `pids` is empty.
pub fn rss_kib_sum(pids: &[u32]) -> Result<Option<u64>, BenchError> {
    if pids.is_empty() {
        return Ok(None);
    }
    pids.iter().map(|&p| rss_kib(p)).sum::<Result<u64, _>>().map(Some)
}

/// Summed CPU time of `pids`; `None` when `pids` is empty or one of them cannot be read.
pub fn cpu_time_sum(pids: &[u32]) -> Option<Duration> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| cpu_time(p).ok()).sum()
}

/// CPU time of this process.
pub fn own_cpu_time() -> Result<Duration, BenchError> {
    cpu_time(std::process::id())
}

fn parse_stat_cpu(stat: &str) -> Option<Duration> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')' come field 3 (state) onwards; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// This process' soft limit of open files.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// Fails with advice when this process may not open `needed` more sockets.
pub fn check_open_files(needed: usize) -> Result<(), BenchError> {
    match open_files_limit() {
        Some(limit) if (limit as usize) < needed + 64 => Err(BenchError::Options(format!(
            "{needed} connections need more open files than the limit of {limit}: raise it with `ulimit -n {}`",
            needed + 1024
        ))),
        _ => Ok(()),
    }
}

/// CPU time of the servers (summed) and of the generator over one interval.
#[derive(Clone, Copy, Debug)]
pub struct CpuMark {
    at: std::time::Instant,
    server: Option<Duration>,
    own: Option<Duration>,
}

/// What a [`CpuMark`] measured.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct CpuUse {
    /// Server CPU seconds over the interval (user + system, all threads, summed over every
    /// server pid given), when a pid was given.
    pub server_cpu_s: Option<f64>,
    /// Server CPU as a share of one core, in percent (all servers together).
    pub server_cpu_pct: Option<f64>,
    /// Generator CPU as a share of one core, in percent (near 100 with one generator thread
    /// means the generator may be the bottleneck).
    pub generator_cpu_pct: Option<f64>,
}

impl CpuMark {
    /// Marks the start of an interval, for the servers `server_pids` (may be empty).
    pub fn start(server_pids: &[u32]) -> Self {
        Self { at: std::time::Instant::now(), server: cpu_time_sum(server_pids), own: own_cpu_time().ok() }
    }

    /// The CPU used since [`CpuMark::start`].
    pub fn stop(&self, server_pids: &[u32]) -> CpuUse {
        let wall = self.at.elapsed().as_secs_f64().max(1e-9);
        let server = match (self.server, cpu_time_sum(server_pids)) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
            _ => None,
        };
        let own = match (self.own, own_cpu_time().ok()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
            _ => None,
        };
        CpuUse {
            server_cpu_s: server,
            server_cpu_pct: server.map(|s| 100.0 * s / wall),
            generator_cpu_pct: own.map(|s| 100.0 * s / wall),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_skips_odd_command_names() {
        let stat = "1234 (a b) c)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu(stat), Some(Duration::from_millis(3000)));
    }

    #[test]
    fn own_process_is_readable() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        own_cpu_time().unwrap();
        assert!(open_files_limit().is_some());
    }

    #[test]
    fn sums_cover_every_pid() {
        let me = std::process::id();
        assert_eq!(cpu_time_sum(&[]), None);
        assert_eq!(rss_kib_sum(&[]).unwrap(), None);
        let one = rss_kib_sum(&[me]).unwrap().unwrap();
        let two = rss_kib_sum(&[me, me]).unwrap().unwrap();
        assert!(two > one, "{one} {two}");
        assert!(cpu_time_sum(&[me, u32::MAX]).is_none());
        assert!(cpu_time_sum(&[me, me]).is_some());
    }
}
