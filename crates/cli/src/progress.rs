//! Progress while ingesting: a bar with rate, ETA and counts on a terminal;
//! a plain line every few seconds otherwise (logs, CI).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::Tally;

pub enum Progress {
    Bar(ProgressBar),
    Lines { every: Duration, last: Instant, started: Instant, total: u64 },
    Quiet,
}

impl Progress {
    pub fn new(total: u64, quiet: bool, every: Duration) -> Self {
        if quiet {
            return Self::Quiet;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style =
                ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} {per_sec} ETA {eta} {msg}")
                    .expect("a valid template");
            bar.set_style(style);
            return Self::Bar(bar);
        }
        let now = Instant::now();
        Self::Lines { every, last: now, started: now, total }
    }

    pub fn update(&mut self, tally: &Tally) {
        match self {
            Self::Bar(bar) => {
                bar.set_position(tally.done());
                bar.set_message(format!(
                    "ok {} failed {} skipped {} deleted {}",
                    tally.succeeded, tally.failed, tally.skipped, tally.deleted
                ));
            }
            Self::Lines { every, last, started, total } => {
                if last.elapsed() >= *every {
                    *last = Instant::now();
                    eprintln!("{}", line(tally, *total, started.elapsed()));
                }
            }
            Self::Quiet => {}
        }
    }

    pub fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.abandon();
        }
    }
}

fn line(tally: &Tally, total: u64, elapsed: Duration) -> String {
    let done = tally.done();
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
    let eta = if rate > 0.0 { format!("{:.0} s", (total - done) as f64 / rate) } else { "?".to_owned() };
    format!(
        "progress: {done}/{total} ({:.1} %), {rate:.1} images/s, ok {}, failed {}, skipped {}, deleted {}, eta {eta}",
        100.0 * done as f64 / total.max(1) as f64,
        tally.succeeded,
        tally.failed,
        tally.skipped,
        tally.deleted
    )
}
