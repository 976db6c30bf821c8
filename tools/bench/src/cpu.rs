//! Where the CPU went during a measurement: the machine's busy share (`/proc/stat`) and
//! the CPU seconds of given processes (`/proc/<pid>/stat`). On a 2-core machine that
//! brokers, Postgres, the services and the load generator share, "the machine was busy
//! 97 % of the window, the consumer used 0.6 of a core" says where a shortfall comes
//! from better than any rate alone.

use serde::Serialize;

/// Clock ticks per second of `/proc/*/stat` (`USER_HZ`; 100 on every Linux build the
/// bench targets, and not readable without libc).
const TICKS_PER_S: f64 = 100.0;

/// Busy and total jiffies of all CPUs together, from the first line of `/proc/stat`.
fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_line(stat.lines().next()?)
}

/// `cpu  user nice system idle iowait irq softirq steal ...` → (busy, total); idle and
/// iowait are the not-busy part.
pub fn parse_cpu_line(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields.take(8).filter_map(|v| v.parse().ok()).collect();
    if values.len() < 5 {
        return None;
    }
    let total: u64 = values.iter().sum();
    let idle = values[3] + values[4];
    Some((total - idle, total))
}

/// User + system CPU seconds a process has used so far.
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_process_stat(&stat)
}

/// Fields 14 and 15 (utime, stime) of `/proc/<pid>/stat`, counted after the command
/// name's closing parenthesis (the name itself may contain spaces).
pub fn parse_process_stat(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state): utime is field 14 → index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_S)
}

/// Processes by command name (`/proc/<pid>/comm`), each group's CPU counted together:
/// Postgres forks a backend per connection and the brokers are `java` processes.
pub const GROUPS: [(&str, &str); 2] = [("postgres", "postgres"), ("kafka brokers", "java")];

/// CPU seconds so far of every process whose command name is `comm`, by pid.
fn group_cpu_s(comm: &str) -> std::collections::HashMap<u32, f64> {
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if name.trim() == comm
            && let Some(cpu) = process_cpu_s(pid)
        {
            out.insert(pid, cpu);
        }
    }
    out
}

/// A window's CPU: started with [`CpuWindow::start`], read with [`CpuWindow::finish`].
#[derive(Debug, Clone)]
pub struct CpuWindow {
    machine: Option<(u64, u64)>,
    pids: Vec<(String, u32, f64)>,
    groups: Vec<(String, String, std::collections::HashMap<u32, f64>)>,
    started: std::time::Instant,
}

/// What a window used.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CpuUse {
    pub seconds: f64,
    /// Share of all cores busy (any process), 0..1.
    pub machine_busy: f64,
    /// Cores each named process used on average over the window (1.0 = one core).
    pub processes: Vec<(String, f64)>,
}

impl CpuWindow {
    pub fn start(pids: &[(&str, u32)]) -> Self {
        Self {
            machine: machine_jiffies(),
            pids: pids
                .iter()
                .map(|(name, pid)| ((*name).to_owned(), *pid, process_cpu_s(*pid).unwrap_or(0.0)))
                .collect(),
            groups: GROUPS
                .iter()
                .map(|(name, comm)| ((*name).to_owned(), (*comm).to_owned(), group_cpu_s(comm)))
                .collect(),
            started: std::time::Instant::now(),
        }
    }

    pub fn finish(&self) -> CpuUse {
        let seconds = self.started.elapsed().as_secs_f64().max(f64::EPSILON);
        let machine_busy = match (self.machine, machine_jiffies()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => (b1 - b0) as f64 / (t1 - t0) as f64,
            _ => 0.0,
        };
        let mut processes: Vec<(String, f64)> = self
            .pids
            .iter()
            .map(|(name, pid, before)| {
                let now = process_cpu_s(*pid).unwrap_or(*before);
                (name.clone(), (now - before) / seconds)
            })
            .collect();
        // A process born inside the window (a new Postgres backend) counts from zero; one
        // that ended inside it is missed: a slight undercount, never an overcount.
        for (name, comm, before) in &self.groups {
            let used: f64 = group_cpu_s(comm)
                .iter()
                .map(|(pid, now)| now - before.get(pid).copied().unwrap_or(0.0))
                .filter(|d| *d > 0.0)
                .sum();
            processes.push((name.clone(), used / seconds));
        }
        CpuUse {
            seconds,
            machine_busy,
            processes,
        }
    }
}

impl CpuUse {
    /// `machine 97 % busy; payment-service 0.62 cores` for a report line.
    pub fn describe(&self) -> String {
        let mut s = format!("machine {:.0} % busy", self.machine_busy * 100.0);
        for (name, cores) in &self.processes {
            s.push_str(&format!("; {name} {cores:.2} cores"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_line_splits_into_busy_and_total() {
        // user nice system idle iowait irq softirq steal
        let line = "cpu  100 0 50 800 50 0 0 0 0 0";
        assert_eq!(parse_cpu_line(line), Some((150, 1000)));
        assert_eq!(parse_cpu_line("cpu0 1 2 3 4 5"), None);
    }

    #[test]
    fn process_cpu_is_utime_plus_stime_after_the_name() {
        let stat = "42 (tokio worker (1)) S 1 42 42 0 -1 4194304 10 0 0 0 250 50 0 0 20 0 9";
        assert_eq!(parse_process_stat(stat), Some(3.0));
        assert!(process_cpu_s(std::process::id()).is_some());
    }
}
