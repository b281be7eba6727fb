//! The progress bar: shown on stderr only when it is a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use relayguard_scanner::Progress;

use crate::cli::SweepArgs;

pub fn progress_bar(args: &SweepArgs, total: u128) -> Option<ProgressBar> {
    if args.no_progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} probed, {msg}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    Some(bar)
}

pub fn spawn_ticker(bar: ProgressBar, progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let started = std::time::Instant::now();
        loop {
            tick.tick().await;
            let probed = progress.probed.load(Ordering::Relaxed);
            bar.set_position(probed);
            let rate = probed as f64 / started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!(
                "{rate:.0}/s, {} open, {} audited, {} findings",
                progress.open.load(Ordering::Relaxed),
                progress.audited.load(Ordering::Relaxed),
                progress.findings.load(Ordering::Relaxed)
            ));
        }
    })
}
