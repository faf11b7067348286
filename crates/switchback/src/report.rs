//! `switchback report`: a post-incident review as text, read from the store only. For
//! each failover in the window: when the first check failed, when the route went failing
//! and failed over, how long phones took to fetch the new generation (50, 95 and 100 %
//! of the inventory, from each phone's first fetch of it), and when it failed back;
//! then the window's events.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use switchback_core::{Config, Event, EventKind, Role, Route, RouteState, SiteNames};
use switchback_server::pictures::{describe, parse_window, start_of};
use switchback_store::{GenerationStart, Store, StoredEvent};

use crate::run::open_store_to_read;

/// The most events a report reads.
const MAX_EVENTS: u32 = 20_000;

/// Prints the review of the last `since` (at most 7 days).
pub async fn report(config: Config, since: &str) -> anyhow::Result<()> {
    let window = parse_window(since).map_err(anyhow::Error::msg)?;
    let store = open_store_to_read(&config).await?;
    let text = build(&*store, &config.site_names(), window, since, Utc::now()).await;
    store.close().await;
    print!("{}", text?);
    Ok(())
}

/// One failover, as the events tell it.
struct Failover<'a> {
    route: Route,
    first_failed_check: Option<&'a Event>,
    failing: Option<&'a Event>,
    over: &'a Event,
    back: Option<&'a Event>,
}

async fn build(
    store: &dyn Store,
    names: &SiteNames,
    window: Duration,
    since: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let from = now - chrono::Duration::from_std(window).context("window")?;
    let events = store.events_since(from, MAX_EVENTS).await.context("cannot read the events")?;
    let generations = store.generations_since(from).await.context("cannot read the generations")?;
    let phones = store.phones_revision().await.context("cannot count the phones")?.count;
    let phones = u64::try_from(phones).unwrap_or(0);

    let mut out = String::new();
    let _ = writeln!(out, "switchback report: {} to {} (last {since})", time(from), time(now));
    let _ = writeln!(out, "phones in the inventory: {phones}");
    let failovers = failovers(&events);
    if failovers.is_empty() {
        let _ = writeln!(out, "\nNo failover in this window.");
    }
    for (n, failover) in failovers.iter().enumerate() {
        let over = failover.over;
        let site = over.active.map_or("?", |r| names.get(r));
        let generation = generation_of(&generations, over.at);
        let _ = write!(out, "\nFailover {}: {} to {site}", n + 1, failover.route.as_str());
        if let Some(g) = generation {
            let _ = write!(out, " (generation {})", g.generation);
        }
        let _ = writeln!(out);
        if let Some(check) = failover.first_failed_check {
            let (_, summary) = describe(check, names);
            let _ = writeln!(out, "  first failed check  {}  {summary}: {}", time(check.at), check.reason);
        }
        if let Some(failing) = failover.failing {
            let _ = write!(out, "  route failing       {}", time(failing.at));
            if let Some(check) = failover.first_failed_check {
                let _ = write!(out, "  detected {} after the first failed check", took(check.at, failing.at));
            }
            let _ = writeln!(out);
        }
        let _ = write!(out, "  failed over         {}  by {}", time(over.at), over.actor);
        if let Some(failing) = failover.failing {
            let _ = write!(out, ", {} after failing", took(failing.at, over.at));
        }
        let _ = writeln!(out, ": {}", over.reason);
        match generation {
            Some(g) => {
                let line = convergence_line(store, g, phones).await?;
                let _ = writeln!(out, "  phones converged    {line}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "  phones converged    unknown (the store has no start for this generation)"
                );
            }
        }
        match failover.back {
            Some(back) => {
                let _ = writeln!(
                    out,
                    "  failed back         {}  by {}, {} after failing over",
                    time(back.at),
                    back.actor,
                    took(over.at, back.at)
                );
            }
            None => {
                let _ = writeln!(out, "  failed back         not yet");
            }
        }
    }

    let _ = writeln!(out, "\nEvents, oldest first ({}):", events.len());
    if events.len() == MAX_EVENTS as usize {
        let _ = writeln!(out, "  (the first {MAX_EVENTS} only)");
    }
    for stored in &events {
        let (label, summary) = describe(&stored.event, names);
        let _ = writeln!(out, "  {}  {label:<20} {summary} ({})", time(stored.event.at), stored.event.reason);
    }
    Ok(out)
}

/// Every route's moves to the backup, with what led to each and what ended it.
fn failovers(events: &[StoredEvent]) -> Vec<Failover<'_>> {
    let mut found = Vec::new();
    for route in Route::ALL {
        let mut failing: Option<&Event> = None;
        let mut first_failed_check: Option<&Event> = None;
        let mut open: Option<usize> = None;
        for event in events.iter().map(|e| &e.event) {
            let primary_service = event.service.filter(|s| s.role == Role::Primary);
            if event.kind == EventKind::ServiceDown
                && primary_service.is_some_and(|s| route.services().contains(&s.kind))
                && first_failed_check.is_none()
                && open.is_none()
            {
                first_failed_check = Some(event);
            }
            if event.route != Some(route)
                || !matches!(event.kind, EventKind::Transition | EventKind::Operator)
            {
                continue;
            }
            match (event.from, event.to) {
                (_, Some(RouteState::Failing)) if open.is_none() => failing = failing.or(Some(event)),
                (Some(from), Some(RouteState::FailedOver))
                    if from != RouteState::FailedOver && open.is_none() =>
                {
                    open = Some(found.len());
                    found.push(Failover { route, first_failed_check, failing, over: event, back: None });
                }
                (_, Some(RouteState::Primary)) => {
                    if let Some(i) = open.take() {
                        let failover: &mut Failover<'_> = &mut found[i];
                        failover.back = Some(event);
                    }
                    failing = None;
                    first_failed_check = None;
                }
                _ => {}
            }
        }
    }
    found.sort_by_key(|f| f.over.at);
    found
}

/// The generation the step at `at` started (its start is the step's earliest event).
fn generation_of(generations: &[GenerationStart], at: DateTime<Utc>) -> Option<GenerationStart> {
    let slack = chrono::Duration::seconds(1);
    generations.iter().rev().find(|g| g.started_at <= at + slack && g.started_at >= at - slack).copied()
}

async fn convergence_line(store: &dyn Store, g: GenerationStart, phones: u64) -> anyhow::Result<String> {
    let convergence =
        store.generation_convergence(g.generation).await.context("cannot read the generation's fetches")?;
    let start = start_of(&convergence).unwrap_or(g.started_at);
    let mut so_far = 0u64;
    let mut seconds = Vec::new();
    for step in &convergence.steps {
        so_far += step.phones;
        seconds.push(((step.second - start.timestamp()).max(0), so_far));
    }
    if phones == 0 {
        return Ok("no phones in the inventory".to_owned());
    }
    let parts: Vec<String> = [50u64, 95, 100]
        .into_iter()
        .map(|percent| {
            let needed = (phones * percent).div_ceil(100);
            match seconds.iter().find(|(_, n)| *n >= needed) {
                Some((s, _)) => format!("{percent} % after {}", humantime::format_duration(secs(*s))),
                None => format!("{percent} % not reached"),
            }
        })
        .collect();
    Ok(format!("{} ({so_far} of {phones} phones fetched generation {})", parts.join(", "), g.generation))
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

fn took(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    humantime::format_duration(secs((to - from).num_seconds())).to_string()
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
