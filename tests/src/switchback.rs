//! The real `switchback` binary as a child process: a config written to a temp folder
//! ([`ConfigBuilder`]), `switchback run` kept running ([`Switchback`]), one-shot
//! `switchback check` runs with their table parsed ([`check`]), and plain HTTP requests
//! to what it serves ([`http_get`]).
//!
//! The binary's path comes from the caller: a test in `crates/switchback/tests` passes
//! `env!("CARGO_BIN_EXE_switchback")`.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use rustix::process::{kill_process, Pid, Signal};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::peers::{closed_port, free_port};

/// How long a `switchback run` may take to stop after SIGTERM before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(10);
/// A `switchback check` that takes longer is hung; the test fails instead of waiting on.
const CHECK_WITHIN: Duration = Duration::from_secs(60);
/// One HTTP request to switchback, connection included.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The `server.read_token` of every config [`ConfigBuilder`] writes (unless cleared with
/// [`ConfigBuilder::read_token`]): the harness reads `/api/events` and `/api/phones` with it.
pub const HARNESS_READ_TOKEN: &str = "harness-read-token-7c1e";

// ---- config ------------------------------------------------------------------------------

/// Where one site's three services are.
#[derive(Debug, Clone)]
pub struct SiteAddrs {
    pub softswitch: SocketAddr,
    /// `udp` (the default) or `tcp`.
    pub transport: &'static str,
    /// `postgres://…`, `mysql://…` or `sqlite://…`.
    pub database_url: String,
    pub stun: SocketAddr,
}

impl SiteAddrs {
    /// A site where nothing listens: every probe fails, so with two of them the monitor
    /// is blind and moves nothing (for tests of what does not depend on the sites).
    pub fn offline() -> anyhow::Result<Self> {
        Ok(Self::new(closed_port()?, "sqlite:///nonexistent-switchback-test/site.db", closed_port()?))
    }

    /// A site whose softswitch is probed over UDP.
    pub fn new(softswitch: SocketAddr, database_url: impl Into<String>, stun: SocketAddr) -> Self {
        Self { softswitch, transport: "udp", database_url: database_url.into(), stun }
    }
}

/// A valid config for two sites with short timers, written by [`ConfigBuilder::write`].
///
/// Defaults: sites `chicago` (primary) and `virginia` (backup); `interval = "1s"`,
/// `timeout = "300ms"`, `retries = 1`, `recheck_interval = "500ms"`,
/// `failover_after = "0s"`, `failback_after = "2s"`; the store a SQLite file in the
/// config's folder; the server on `127.0.0.1` at a free port.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    sites: [(String, SiteAddrs); 2],
    interval: Duration,
    timeout: Duration,
    retries: u32,
    recheck_interval: Duration,
    failover_after: Duration,
    failback_after: Duration,
    auto_failback: bool,
    admin_token: Option<String>,
    read_token: Option<String>,
    /// Lines added to `[server]` (tls_listen, max_connections, …).
    server_extra: String,
    extra: String,
}

impl ConfigBuilder {
    pub fn new(primary: SiteAddrs, backup: SiteAddrs) -> Self {
        Self {
            sites: [("chicago".to_owned(), primary), ("virginia".to_owned(), backup)],
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(300),
            retries: 1,
            recheck_interval: Duration::from_millis(500),
            failover_after: Duration::ZERO,
            failback_after: Duration::from_secs(2),
            auto_failback: true,
            admin_token: None,
            read_token: Some(HARNESS_READ_TOKEN.to_owned()),
            server_extra: String::new(),
            extra: String::new(),
        }
    }

    pub fn site_names(mut self, primary: &str, backup: &str) -> Self {
        self.sites[0].0 = primary.to_owned();
        self.sites[1].0 = backup.to_owned();
        self
    }

    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    pub fn recheck_interval(mut self, recheck_interval: Duration) -> Self {
        self.recheck_interval = recheck_interval;
        self
    }

    pub fn failover_after(mut self, failover_after: Duration) -> Self {
        self.failover_after = failover_after;
        self
    }

    pub fn failback_after(mut self, failback_after: Duration) -> Self {
        self.failback_after = failback_after;
        self
    }

    pub fn auto_failback(mut self, auto_failback: bool) -> Self {
        self.auto_failback = auto_failback;
        self
    }

    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.to_owned());
        self
    }

    /// `server.read_token`; `None` leaves it out of the config.
    pub fn read_token(mut self, token: Option<&str>) -> Self {
        self.read_token = token.map(str::to_owned);
        self
    }

    /// A `key = value` line added to `[server]`.
    pub fn server_line(mut self, line: &str) -> Self {
        self.server_extra.push_str(line);
        self.server_extra.push('\n');
        self
    }

    /// The read token the config carries, if any.
    pub fn read_token_value(&self) -> Option<&str> {
        self.read_token.as_deref()
    }

    /// TOML appended verbatim at the end (`[[alerts]]` tables, `[render]`, …).
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    /// The most one check of one service may take: every attempt to its timeout.
    pub fn budget(&self) -> Duration {
        self.timeout * (self.retries + 1)
    }

    /// Writes `switchback.toml` into a fresh temp folder, with a free port to listen on.
    pub fn write(&self) -> anyhow::Result<TestConfig> {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)?));
        let dir = tempfile::Builder::new().prefix("switchback-").tempdir()?;
        let store_url = format!("sqlite://{}", dir.path().join("switchback.db").display());
        let text = self.toml(listen, &store_url);
        TestConfig::write_in(dir, &text, Some(listen))
    }

    /// Like [`ConfigBuilder::write`], with the store at `store_url` instead of a SQLite
    /// file in the config's folder.
    pub fn write_with_store(&self, store_url: &str) -> anyhow::Result<TestConfig> {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)?));
        let dir = tempfile::Builder::new().prefix("switchback-").tempdir()?;
        TestConfig::write_in(dir, &self.toml(listen, store_url), Some(listen))
    }

    /// The config text for a server on `listen` and a store at `store_url`.
    pub fn toml(&self, listen: SocketAddr, store_url: &str) -> String {
        let mut out = format!("[server]\nlisten = \"{listen}\"\npublic_url = \"http://{listen}\"\n");
        if let Some(token) = &self.admin_token {
            out.push_str(&format!("admin_token = {}\n", quoted(token)));
        }
        if let Some(token) = &self.read_token {
            out.push_str(&format!("read_token = {}\n", quoted(token)));
        }
        out.push_str(&self.server_extra);
        out.push_str(&format!("\n[store]\nurl = {}\n", quoted(store_url)));
        out.push_str(&format!(
            "\n[monitor]\ninterval = \"{}\"\ntimeout = \"{}\"\nretries = {}\nrecheck_interval = \"{}\"\n\
             failover_after = \"{}\"\nfailback_after = \"{}\"\nauto_failback = {}\n",
            millis(self.interval),
            millis(self.timeout),
            self.retries,
            millis(self.recheck_interval),
            millis(self.failover_after),
            millis(self.failback_after),
            self.auto_failback,
        ));
        for ((name, site), role) in self.sites.iter().zip(["primary", "backup"]) {
            out.push_str(&format!(
                "\n[[sites]]\nname = {}\nrole = \"{role}\"\n\
                 softswitch = {{ host = \"{}\", port = {}, transport = \"{}\" }}\n\
                 database = {{ url = {} }}\nstun = {{ host = \"{}\", port = {} }}\n",
                quoted(name),
                site.softswitch.ip(),
                site.softswitch.port(),
                site.transport,
                quoted(&site.database_url),
                site.stun.ip(),
                site.stun.port(),
            ));
        }
        if !self.extra.is_empty() {
            out.push('\n');
            out.push_str(&self.extra);
        }
        out
    }
}

/// humantime accepts `0ms`, `300ms`, `1500ms`: exact for any test timer.
fn millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A config file in its own temp folder (removed on drop), which also holds the SQLite
/// store and switchback's log.
#[derive(Debug)]
pub struct TestConfig {
    dir: TempDir,
    path: PathBuf,
    listen: Option<SocketAddr>,
}

impl TestConfig {
    /// Any text as the config file, for bad-config tests.
    pub fn raw(text: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("switchback-").tempdir()?;
        Self::write_in(dir, text, None)
    }

    fn write_in(dir: TempDir, text: &str, listen: Option<SocketAddr>) -> anyhow::Result<Self> {
        let path = dir.path().join("switchback.toml");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { dir, path, listen })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temp folder: config, store, log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file's current text.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// Replaces the file's text (for a restart with another config); same folder, same store.
    pub fn rewrite(&self, text: &str) -> anyhow::Result<()> {
        std::fs::write(&self.path, text).with_context(|| format!("rewriting {}", self.path.display()))
    }

    /// `server.listen`, for a config written by [`ConfigBuilder`].
    pub fn listen(&self) -> Option<SocketAddr> {
        self.listen
    }

    /// `http://127.0.0.1:PORT`, where `switchback run` serves, for a config from [`ConfigBuilder`].
    pub fn base_url(&self) -> anyhow::Result<String> {
        let listen = self.listen.context("a raw config has no known listen address")?;
        Ok(format!("http://{listen}"))
    }

    /// The SQLite file [`ConfigBuilder`] points `store.url` at.
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("switchback.db")
    }
}

// ---- switchback run ----------------------------------------------------------------------

/// `switchback run --config FILE` as a child process, its stdout and stderr appended to
/// `switchback.log` beside the config; SIGKILLed if still running when dropped.
#[derive(Debug)]
pub struct Switchback {
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Switchback {
    /// Starts `binary run --config config` (needs a tokio runtime). Returns at once: wait for
    /// readiness with [`Switchback::wait_ready`] or [`Switchback::wait_for_log`].
    pub fn run(binary: impl AsRef<Path>, config: &Path) -> anyhow::Result<Self> {
        let dir = config.parent().context("the config file has no folder")?;
        let mut this = Self {
            binary: binary.as_ref().to_owned(),
            config: config.to_owned(),
            log: dir.join("switchback.log"),
            child: None,
            starts: 0,
        };
        this.spawn()?;
        Ok(this)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let mut log = OpenOptions::new().create(true).append(true).open(&self.log)?;
        // A marker a person reading the log of a restart test can find.
        writeln!(log, "==== harness: switchback run, start {} ====", self.starts)?;
        let err = log.try_clone()?;
        let mut command = Command::new(&self.binary);
        command.arg("run").arg("--config").arg(&self.config);
        // The first start creates the store, as an operator's would; a restart must find it.
        if self.starts == 1 {
            command.arg("--init");
        }
        let child = command
            // Plain text, so that a test can grep `route="sip"` (tracing colours by default).
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The exit status, if the process has exited (on its own or by [`Switchback::kill`]).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL after 10 s, which is an error: a clean
    /// shutdown is part of the contract).
    pub async fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        let child = self.child.as_mut().context("switchback was never started")?;
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        let pid = child.id().and_then(|id| i32::try_from(id).ok()).and_then(Pid::from_raw);
        let pid = pid.context("switchback has no pid")?;
        kill_process(pid, Signal::TERM).context("sending SIGTERM")?;
        match tokio::time::timeout(STOP_WITHIN, child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                let _ = child.kill().await;
                anyhow::bail!("switchback did not stop within {STOP_WITHIN:?} of SIGTERM:\n{}", self.log())
            }
        }
    }

    /// Stops it with SIGTERM (see [`Switchback::kill`]) and starts it again on the same
    /// config, store and log.
    pub async fn restart(&mut self) -> anyhow::Result<ExitStatus> {
        let status = self.kill().await?;
        self.spawn()?;
        Ok(status)
    }

    /// Everything it has written so far, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits until the log (of the current start) contains `needle`; fails early, with the
    /// log, when the process exits first.
    pub async fn wait_for_log(&mut self, needle: &str, deadline: Duration) -> anyhow::Result<()> {
        let marker = format!("==== harness: switchback run, start {} ====", self.starts);
        let end = Instant::now() + deadline;
        loop {
            let log = self.log();
            let current = log.rsplit_once(&marker).map_or(log.as_str(), |(_, after)| after);
            if current.contains(needle) {
                return Ok(());
            }
            self.fail_if_exited()?;
            if Instant::now() >= end {
                anyhow::bail!("`{needle}` not in switchback's log after {deadline:?}:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `GET {base_url}/healthz` answers 200; fails early when the process exits.
    pub async fn wait_ready(&mut self, base_url: &str, deadline: Duration) -> anyhow::Result<()> {
        let url = format!("{base_url}/healthz");
        let end = Instant::now() + deadline;
        loop {
            if matches!(http_get(&url).await, Ok(response) if response.status == 200) {
                return Ok(());
            }
            self.fail_if_exited()?;
            if Instant::now() >= end {
                anyhow::bail!("{url} did not answer 200 within {deadline:?}:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn fail_if_exited(&mut self) -> anyhow::Result<()> {
        match self.exited() {
            Some(status) => anyhow::bail!("switchback exited ({status}):\n{}", self.log()),
            None => Ok(()),
        }
    }
}

// ---- switchback check --------------------------------------------------------------------

/// One `switchback check` run.
#[derive(Debug)]
pub struct CheckRun {
    /// `None` when it died by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

/// One row of the table `check` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    /// The site's name (`chicago`).
    pub site: String,
    /// `primary` or `backup`.
    pub role: String,
    /// `softswitch`, `database` or `stun`.
    pub service: String,
    pub healthy: bool,
    /// As printed (`1.2 ms`, or `-`).
    pub latency: String,
    /// Empty when healthy.
    pub reason: String,
}

/// Runs `binary check --config config` to its end (at most 60 s).
pub async fn check(binary: impl AsRef<Path>, config: &Path) -> anyhow::Result<CheckRun> {
    one_shot(binary, &["check".as_ref(), "--config".as_ref(), config.as_os_str()]).await
}

const COLUMNS: [&str; 5] = ["SITE", "SERVICE", "HEALTHY", "LATENCY", "REASON"];

impl CheckRun {
    /// The table's rows, parsed by the header's column positions (cells hold spaces:
    /// `chicago (primary)`, `status 503`).
    pub fn rows(&self) -> anyhow::Result<Vec<CheckRow>> {
        let mut lines = self.stdout.lines().skip_while(|line| !line.starts_with("SITE"));
        let header: Vec<char> = lines.next().context("no table header in stdout")?.chars().collect();
        let header_text: String = header.iter().collect();
        let mut starts = Vec::new();
        for column in COLUMNS {
            starts
                .push(header_text.find(column).with_context(|| format!("no {column} column in the header"))?);
        }
        // `find` gives byte offsets; the header is ASCII, so they are char offsets too.
        lines.filter(|line| !line.trim().is_empty()).map(|line| parse_row(line, &starts)).collect()
    }

    /// The row of `role`'s `service`.
    pub fn row(&self, role: &str, service: &str) -> anyhow::Result<CheckRow> {
        self.rows()?
            .into_iter()
            .find(|row| row.role == role && row.service == service)
            .with_context(|| format!("no row for {role} {service} in:\n{}", self.stdout))
    }
}

fn parse_row(line: &str, starts: &[usize]) -> anyhow::Result<CheckRow> {
    let chars: Vec<char> = line.chars().collect();
    let cell = |i: usize| -> String {
        let from = starts[i].min(chars.len());
        let to = starts.get(i + 1).map_or(chars.len(), |&s| s.min(chars.len()));
        chars[from..to].iter().collect::<String>().trim().to_owned()
    };
    let site_cell = cell(0);
    let (site, role) = site_cell
        .strip_suffix(')')
        .and_then(|rest| rest.rsplit_once(" ("))
        .with_context(|| format!("site cell `{site_cell}` is not `name (role)`"))?;
    let healthy = match cell(2).as_str() {
        "yes" => true,
        "no" => false,
        other => anyhow::bail!("HEALTHY is `{other}` in `{line}`"),
    };
    Ok(CheckRow {
        site: site.to_owned(),
        role: role.to_owned(),
        service: cell(1),
        healthy,
        latency: cell(3),
        reason: cell(4),
    })
}

// ---- switchback phones import and other one-shot commands --------------------------------

/// Runs `binary ARGS…` to its end (at most 60 s), for the one-shot commands (`check`,
/// `phones import`, `render`); `rows()` only makes sense for `check`.
pub async fn one_shot(binary: impl AsRef<Path>, args: &[&std::ffi::OsStr]) -> anyhow::Result<CheckRun> {
    let binary = binary.as_ref();
    let start = Instant::now();
    let output =
        Command::new(binary).args(args).env("NO_COLOR", "1").stdin(Stdio::null()).kill_on_drop(true).output();
    let output = tokio::time::timeout(CHECK_WITHIN, output)
        .await
        .with_context(|| format!("switchback {args:?} still running after {CHECK_WITHIN:?}"))?
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(CheckRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: start.elapsed(),
    })
}

/// `binary phones import --config config csv`.
pub async fn phones_import(binary: impl AsRef<Path>, config: &Path, csv: &Path) -> anyhow::Result<CheckRun> {
    let args =
        ["phones".as_ref(), "import".as_ref(), "--config".as_ref(), config.as_os_str(), csv.as_os_str()];
    one_shot(binary, &args).await
}

// ---- HTTP --------------------------------------------------------------------------------

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(&self.body).with_context(|| format!("not the JSON expected: {}", self.text()))
    }
}

/// A client for requests to switchback: no proxy from the environment, a 10 s timeout.
/// One per test runtime (a pooled connection dies with the runtime that opened it).
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().no_proxy().timeout(HTTP_TIMEOUT).build()?)
}

/// `GET url`, the body read whole; any status is an `Ok`.
pub async fn http_get(url: &str) -> anyhow::Result<HttpResponse> {
    let response = http_client()?.get(url).send().await.with_context(|| format!("GET {url}"))?;
    read(response).await
}

/// Reads a response from [`http_client`] whole.
pub async fn read(response: reqwest::Response) -> anyhow::Result<HttpResponse> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.context("reading the body")?.to_vec();
    Ok(HttpResponse { status, headers, body })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

    use secrecy::ExposeSecret;
    use switchback_core::config::Transport;

    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn written_config_has_the_sites_and_short_timers() {
        let primary = SiteAddrs::new(
            addr("127.0.0.2:5060"),
            "postgres://postgres@127.0.0.1/postgres",
            addr("127.0.0.2:3478"),
        );
        let backup = SiteAddrs {
            transport: "tcp",
            ..SiteAddrs::new(addr("127.0.0.3:5070"), "mysql://root@127.0.0.1/mysql", addr("127.0.0.3:3479"))
        };
        let builder = ConfigBuilder::new(primary, backup).failback_after(Duration::from_millis(1500));
        let text = builder.toml(addr("127.0.0.1:8080"), "sqlite:///tmp/x \"y\".db");
        let config = switchback_core::Config::parse(&text).unwrap();
        assert_eq!(config.server.public_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(config.store.url.expose_secret(), "sqlite:///tmp/x \"y\".db");
        assert_eq!(config.monitor.timeout, Duration::from_millis(300));
        assert_eq!(config.monitor.failback_after, Duration::from_millis(1500));
        assert_eq!(config.sites[1].softswitch.transport, Transport::Tcp);
        assert_eq!(config.sites[1].database.url.expose_secret(), "mysql://root@127.0.0.1/mysql");
        assert_eq!(builder.budget(), Duration::from_millis(600));
    }

    #[test]
    fn table_rows_are_parsed_by_column() {
        let run = CheckRun {
            code: Some(1),
            stdout: "SITE                SERVICE     HEALTHY  LATENCY  REASON\n\
                     chicago (primary)   softswitch  no       -        status 503\n\
                     virginia (backup)   stun        yes      0.4 ms\n"
                .to_owned(),
            stderr: String::new(),
            elapsed: Duration::ZERO,
        };
        let rows = run.rows().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            CheckRow {
                site: "chicago".into(),
                role: "primary".into(),
                service: "softswitch".into(),
                healthy: false,
                latency: "-".into(),
                reason: "status 503".into(),
            }
        );
        assert_eq!(run.row("backup", "stun").unwrap().latency, "0.4 ms");
        assert!(run.row("backup", "database").is_err());
    }
}
