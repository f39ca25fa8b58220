//! CPU time, RSS and open files of a process, from /proc (Linux).

use serde::Serialize;
use std::time::Instant;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcSample {
    /// user + system CPU time, seconds.
    pub cpu_s: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Peak RSS, KiB.
    pub hwm_kib: u64,
    pub threads: u64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Reads /proc/PID/stat and /proc/PID/status; None if the process is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15 → indexes 11, 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> u64 {
        status.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    Some(ProcSample { cpu_s: (utime + stime) / clock_ticks(), rss_kib: kib("VmRSS:"), hwm_kib: kib("VmHWM:"), threads: kib("Threads:") })
}

/// Number of open file descriptors of a process.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// CPU and memory of a process over a measured interval.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    pub pid: u32,
    /// CPU used over the interval, in percent of one core (200 = both cores of a 2-core machine).
    pub cpu_pct: f64,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub hwm_kib: u64,
}

/// Measures a process (or several, summed) from `start` to `finish`.
pub struct Meter {
    pids: Vec<u32>,
    at: Instant,
    first: Option<ProcSample>,
}

/// The sum of several processes' counters (None if none is there).
fn sample_sum(pids: &[u32]) -> Option<ProcSample> {
    let all: Vec<ProcSample> = pids.iter().filter_map(|p| sample(*p)).collect();
    if all.is_empty() {
        return None;
    }
    Some(all.iter().fold(ProcSample::default(), |a, s| ProcSample {
        cpu_s: a.cpu_s + s.cpu_s,
        rss_kib: a.rss_kib + s.rss_kib,
        hwm_kib: a.hwm_kib + s.hwm_kib,
        threads: a.threads + s.threads,
    }))
}

impl Meter {
    pub fn start(pid: u32) -> Meter {
        Meter::start_many(&[pid])
    }
    /// Several processes (the nodes of a cluster): CPU and memory are summed.
    pub fn start_many(pids: &[u32]) -> Meter {
        Meter { pids: pids.to_vec(), at: Instant::now(), first: sample_sum(pids) }
    }
    pub fn finish(&self) -> Usage {
        let last = sample_sum(&self.pids).unwrap_or_default();
        let first = self.first.unwrap_or_default();
        let secs = self.at.elapsed().as_secs_f64().max(1e-9);
        Usage {
            pid: self.pids.first().copied().unwrap_or(0),
            cpu_pct: 100.0 * (last.cpu_s - first.cpu_s).max(0.0) / secs,
            rss_start_kib: first.rss_kib,
            rss_end_kib: last.rss_kib,
            hwm_kib: last.hwm_kib,
        }
    }
}
