//! `switchback check`: one round of probes, printed as a table.

use std::sync::Arc;

use switchback_core::{CheckResult, Clock, Config, Role, SystemClock};
use switchback_monitor::scheduler::{self, Cadence, ConfigProber, Prober};

/// Probes every service once and prints the table; true when every primary service is up.
pub async fn check(config: Config) -> anyhow::Result<bool> {
    let config = Arc::new(config);
    let prober: Arc<dyn Prober> = Arc::new(ConfigProber::new(config.clone()));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let results = scheduler::round(&prober, &clock, Cadence::from_config(&config).bound).await;
    print!("{}", table(&config, &results));
    Ok(results.iter().filter(|r| r.service.role == Role::Primary).all(|r| r.healthy))
}

fn table(config: &Config, results: &[CheckResult]) -> String {
    let mut rows =
        vec![["SITE".to_owned(), "SERVICE".into(), "HEALTHY".into(), "LATENCY".into(), "REASON".into()]];
    for r in results {
        rows.push([
            format!("{} ({})", config.site_name(r.service.role), r.service.role),
            r.service.kind.to_string(),
            if r.healthy { "yes" } else { "no" }.to_owned(),
            r.latency.map_or_else(|| "-".to_owned(), |l| format!("{:.1} ms", l.as_secs_f64() * 1000.0)),
            r.reason.clone().unwrap_or_default(),
        ]);
    }
    let widths: Vec<usize> = (0..5).map(|i| rows.iter().map(|row| row[i].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
