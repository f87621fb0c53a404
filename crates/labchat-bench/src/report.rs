//! Human-readable tables of the reports (the JSON form is their `Serialize` output).

use std::fmt::Write as _;

use crate::procfs::CpuUse;
use crate::stats::Latency;
use crate::workloads::{PhaseSummary, Problems};
use crate::{
    FanoutReport, HealReport, IdleReport, JoinStormReport, RateReport, ReceiptsReport, SessionReport, SlowReport,
    StepReport,
};

/// A report that renders as a two-column table.
pub trait Table {
    /// The title line.
    fn title(&self) -> String;
    /// Label and value rows.
    fn rows(&self) -> Vec<(&'static str, String)>;

    /// The table as text.
    fn render(&self) -> String {
        let rows = self.rows();
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = format!("== {}\n", self.title());
        for (k, v) in rows {
            let _ = writeln!(out, "  {k:<width$}  {v}");
        }
        out
    }
}

fn latency(l: &Latency) -> String {
    format!("p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3} ms  (n={})", l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count)
}

fn opt(v: Option<f64>, decimals: usize, unit: &str) -> String {
    v.map_or_else(|| "n/a (no --server-pid)".to_owned(), |v| format!("{v:.decimals$}{unit}"))
}

fn rate(v: f64) -> String {
    format!("{v:.0}/s")
}

fn cpu_rows(c: &CpuUse, rows: &mut Vec<(&'static str, String)>) {
    rows.push(("server CPU", opt(c.server_cpu_pct, 1, "% of a core")));
    rows.push(("generator CPU", opt(c.generator_cpu_pct, 1, "% of a core")));
}

fn phase_rows(p: &PhaseSummary, rows: &mut Vec<(&'static str, String)>) {
    rows.push(("messages sent", p.sent.to_string()));
    rows.push(("deliveries", format!("{} of {} expected", p.delivered, p.expected)));
    rows.push(("missing / duplicated", format!("{} / {}", p.missing, p.duplicated)));
    rows.push(("latency", latency(&p.latency)));
}

fn problem_rows(p: &Problems, load1: Option<f64>, rows: &mut Vec<(&'static str, String)>) {
    if p.strays > 0 || p.server_errors > 0 || p.closed_connections > 0 {
        rows.push((
            "PROBLEMS",
            format!(
                "strays {}, server errors {} (first: {}), connections ended early {}",
                p.strays,
                p.server_errors,
                p.first_error.as_deref().unwrap_or("-"),
                p.closed_connections
            ),
        ));
    }
    rows.push(("load average (1 min)", load1.map_or_else(|| "n/a".into(), |l| format!("{l:.2}"))));
}

impl Table for SessionReport {
    fn title(&self) -> String {
        format!(
            "session: {} readers join a room of {} messages of {} characters ({} bytes)",
            self.readers, self.messages, self.chars, self.text_bytes
        )
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            ("joined", format!("{} of {}", self.joined, self.readers)),
            ("frames received", format!("{} (largest {} bytes)", self.frames_received, self.largest_frame_bytes)),
            ("join time", format!("{:.2} s", self.join_elapsed_s)),
            (
                "server RSS before/after",
                match (self.rss_before_kib, self.rss_after_kib) {
                    (Some(b), Some(a)) => format!("{b} KiB / {a} KiB"),
                    _ => "n/a (no --server-pid)".into(),
                },
            ),
            ("server RSS per connection", opt(self.rss_per_connection_bytes, 0, " bytes")),
        ];
        cpu_rows(&self.cpu, &mut rows);
        rows.push(("load (1 min)", self.load1.map_or_else(|| "n/a".into(), |l| format!("{l:.2}"))));
        rows
    }
}

impl Table for JoinStormReport {
    fn title(&self) -> String {
        format!("joinstorm: {} users join one room at once, {} storm(s); counts per storm", self.users, self.rounds)
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let k = self.rounds.max(1) as u64;
        let presence = self.member_joined + self.member_left + self.members_changed;
        let mut rows = vec![
            ("joined", format!("{} of {} in {:.2} s", self.joined as u64 / k, self.users, self.join_elapsed_s)),
            ("frames received", (self.frames / k).to_string()),
            (
                "presence frames",
                format!(
                    "{} (memberJoined {}, memberLeft {}, membersChanged {}); without coalescing N(N-1)/2 = {}",
                    presence / k,
                    self.member_joined / k,
                    self.member_left / k,
                    self.members_changed / k,
                    self.uncoalesced_frames
                ),
            ),
            (
                "per member",
                format!(
                    "{:.1} on average, {} at most",
                    self.presence_frames_per_member, self.max_presence_frames_per_member
                ),
            ),
            ("members with a wrong count", self.members_with_a_wrong_count.to_string()),
            ("server CPU (storm + settle)", opt(self.server_cpu_ms, 1, " ms per storm")),
        ];
        cpu_rows(&self.cpu, &mut rows);
        rows.push(("load (1 min)", self.load1.map_or_else(|| "n/a".into(), |l| format!("{l:.2}"))));
        rows
    }
}

impl Table for IdleReport {
    fn title(&self) -> String {
        format!("idle: {} connections over {} rooms", self.connections, self.rooms)
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            ("joined / failed", format!("{} / {}", self.joined, self.failed)),
            ("connect+join", latency(&self.connect_join)),
            ("connections/s", format!("{:.0} (concurrency {})", self.connections_per_s, self.concurrency)),
            (
                "server RSS before/after",
                match (self.rss_before_kib, self.rss_after_kib) {
                    (Some(b), Some(a)) => format!("{b} KiB / {a} KiB"),
                    _ => "n/a (no --server-pid)".into(),
                },
            ),
            ("server RSS per connection", opt(self.rss_per_connection_bytes, 0, " bytes")),
            ("server CPU per connection", opt(self.server_cpu_us_per_connection, 1, " us")),
        ];
        if let Some(f) = &self.first_failure {
            rows.push(("first failure", f.clone()));
        }
        cpu_rows(&self.cpu, &mut rows);
        problem_rows(&Problems::default(), self.load1, &mut rows);
        rows
    }
}

impl Table for FanoutReport {
    fn title(&self) -> String {
        format!("fanout: M={} W={} size={}", self.members, self.window, self.size)
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            (
                "deliveries/s",
                format!(
                    "{} ({} per message, sender's copy included)",
                    rate(self.deliveries_per_s),
                    self.receivers_per_message
                ),
            ),
            ("messages/s", rate(self.messages_per_s)),
            ("measured for", format!("{:.2} s", self.elapsed_s)),
        ];
        phase_rows(&self.phase, &mut rows);
        rows.push(("server CPU per delivery", opt(self.server_cpu_us_per_delivery, 3, " us")));
        cpu_rows(&self.cpu, &mut rows);
        if self.stalled {
            rows.push(("STALLED", "the window did not drain: deliveries went missing".into()));
        }
        problem_rows(&self.problems, self.load1, &mut rows);
        rows
    }
}

impl Table for RateReport {
    fn title(&self) -> String {
        let pass = match self.pass {
            Some(true) => "  [pass]",
            Some(false) => "  [FAIL]",
            None => "",
        };
        format!(
            "{}: R={} M={} at {} messages/s ({} deliveries/s scheduled){pass}",
            self.workload,
            self.rooms,
            self.members,
            self.target_messages_per_s.round(),
            self.target_deliveries_per_s.round()
        )
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            (
                "deliveries/s",
                format!(
                    "{} ({} per message, sender's copy included)",
                    rate(self.deliveries_per_s),
                    self.receivers_per_message
                ),
            ),
            ("measured for", format!("{:.2} s", self.elapsed_s)),
            ("worst send lag", format!("{:.3} ms behind schedule", self.max_send_lag_ms)),
        ];
        phase_rows(&self.phase, &mut rows);
        rows.push(("server CPU per delivery", opt(self.server_cpu_us_per_delivery, 3, " us")));
        cpu_rows(&self.cpu, &mut rows);
        problem_rows(&self.problems, self.load1, &mut rows);
        rows
    }
}

impl Table for StepReport {
    fn title(&self) -> String {
        format!("rate steps: highest rate with p99 < {} ms", self.p99_target_ms)
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows: Vec<(&'static str, String)> = self
            .steps
            .iter()
            .map(|s| {
                (
                    if s.pass == Some(true) { "step pass" } else { "step FAIL" },
                    format!(
                        "{:>8.0} msg/s  {:>9.0} deliveries/s  p99 {:.3} ms  missing {}",
                        s.target_messages_per_s, s.deliveries_per_s, s.phase.latency.p99_ms, s.phase.missing
                    ),
                )
            })
            .collect();
        rows.push((
            "best",
            match (self.best_messages_per_s, self.best_deliveries_per_s, self.best_p99_ms) {
                (Some(m), Some(d), Some(p)) => format!("{m:.0} msg/s = {d:.0} deliveries/s, p99 {p:.3} ms"),
                _ => "no step passed".into(),
            },
        ));
        rows
    }
}

impl Table for ReceiptsReport {
    fn title(&self) -> String {
        format!("receipts: M={} W={}", self.members, self.window)
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            ("messages fully receipted", format!("{} ({:.0}/s)", self.completed, self.messages_per_s)),
            ("send -> all receipts", latency(&self.receipt_latency)),
            (
                "receipts seen",
                format!(
                    "{} of {} expected, {} duplicated, {} stray",
                    self.receipts_seen, self.receipts_expected, self.receipts_duplicated, self.receipts_stray
                ),
            ),
            ("message deliveries", format!("{} of {}", self.deliveries.delivered, self.deliveries.expected)),
            ("missing / duplicated", format!("{} / {}", self.deliveries.missing, self.deliveries.duplicated)),
            ("send -> deliver", latency(&self.deliveries.latency)),
        ];
        cpu_rows(&self.cpu, &mut rows);
        problem_rows(&self.problems, self.load1, &mut rows);
        rows
    }
}

impl Table for SlowReport {
    fn title(&self) -> String {
        format!("slow: M={} (member 0 never reads), {} messages/s of {} bytes", self.members, self.rate, self.size)
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        phase_rows(&self.others, &mut rows);
        rows.push((
            "stuck member",
            format!("{} ({} frames were still readable)", self.slow_outcome, self.slow_frames_buffered),
        ));
        let series: Vec<String> = self.rss.iter().map(|s| format!("{:.1}s:{}", s.t_s, s.rss_kib / 1024)).collect();
        rows.push((
            "server RSS MiB over time",
            if series.is_empty() { "n/a (no --server-pid)".into() } else { series.join(" ") },
        ));
        cpu_rows(&self.cpu, &mut rows);
        problem_rows(&self.problems, self.load1, &mut rows);
        rows
    }
}

impl Table for HealReport {
    fn title(&self) -> String {
        format!("heal: the first post after a Redis fault, node 1 -> node 2, {} heals per fault", self.heals)
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows: Vec<(&'static str, String)> = self
            .variants
            .iter()
            .map(|v| {
                let name = match v.variant {
                    crate::workloads::heal::Variant::QuietRestart => "quiet restart",
                    crate::workloads::heal::Variant::BusyRestart => "busy restart (10 posts)",
                    crate::workloads::heal::Variant::KillNormal => "CLIENT KILL TYPE normal",
                    crate::workloads::heal::Variant::KillPubsub => "CLIENT KILL TYPE pubsub",
                    crate::workloads::heal::Variant::Pause3s => "CLIENT PAUSE 3000",
                };
                (name, latency(&v.latency))
            })
            .collect();
        rows.push(("load average (1 min)", self.load1.map_or_else(|| "n/a".into(), |l| format!("{l:.2}"))));
        rows
    }
}

impl Table for crate::ScaleReport {
    fn title(&self) -> String {
        format!("scale: shard {}, {} connections", self.shard, self.connections)
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let l =
            |x: &crate::stats::Latency| format!("p50 {:.1} ms, p99 {:.1} ms ({} samples)", x.p50_ms, x.p99_ms, x.count);
        vec![
            (
                "opened",
                format!(
                    "{} in {:.1} s ({:.0}/s), {} failures",
                    self.opened, self.open_elapsed_s, self.open_per_s, self.open_failures
                ),
            ),
            ("connect+join", l(&self.connect_join)),
            ("server RSS", format!("{:?} KiB", self.server_rss_kib)),
            (
                "fan-out last delivery",
                format!(
                    "{}, {} messages, {} missing",
                    l(&self.fanout_last_delivery),
                    self.fanout_messages,
                    self.fanout_missing
                ),
            ),
            ("small rooms, steady", l(&self.steady)),
            ("small rooms, storm", l(&self.storm)),
            (
                "reconnects",
                format!(
                    "{} of {} back after {:?} s, peak {} joins/s",
                    self.back, self.lost, self.back_after_s, self.peak_rejoins_per_s
                ),
            ),
            (
                "checked against the store",
                format!("{} rooms: {} gaps, {} duplicates", self.rooms_checked, self.gaps, self.duplicates),
            ),
            ("server errors", format!("{} {:?}", self.server_errors, self.first_error)),
            (
                "generator's own lateness",
                format!(
                    "at worst {:.0} ms before traffic, {:.0} ms from it; {} wakes a second late",
                    self.loop_lag_max_ms_before_traffic, self.loop_lag_max_ms_from_traffic, self.loop_stalls
                ),
            ),
        ]
    }
}
