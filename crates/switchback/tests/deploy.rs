//! The files in `deploy/`, checked with the real tools: every config loads with the
//! same code `switchback run` uses, the three nodes of `deploy/two-site/` form one
//! group, `haproxy -c` accepts the HAProxy files, and `systemd-analyze verify` accepts
//! both units. A missing tool fails the test under `CI=true` and skips it elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use secrecy::ExposeSecret;
use switchback_core::Config;
use switchback_tests::require;

/// The nodes of `deploy/two-site/`, each in `NODE.toml`, run as `switchback@NODE`.
const NODES: [&str; 3] = ["chicago-1", "virginia-1", "witness-1"];

/// Where the units start the binary; the checks point it at the one just built.
const INSTALLED_BINARY: &str = "/usr/local/bin/switchback";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deploy(name: &str) -> PathBuf {
    repo().join("deploy").join(name)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn load(path: &Path) -> Config {
    Config::load(path).unwrap_or_else(|e| panic!("{} is refused: {e}", path.display()))
}

/// A tool from the PATH or the sbin folders (haproxy lives in /usr/sbin, which is not
/// on every user's PATH).
fn tool(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs =
        std::env::split_paths(&path).chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("`{name}` is not installed (Debian package `{package}`; .ci/install-peers installs it)")
}

#[test]
fn the_example_config_loads() {
    let config = load(&deploy("switchback.example.toml"));
    assert!(config.cluster.is_none(), "the single-instance example has no [cluster]");
    assert!(
        Config::parse(&read(&deploy("switchback.example.toml"))).unwrap().server.admin_token.is_none(),
        "the admin token belongs in the env file, not in the example config"
    );
}

#[test]
fn the_two_site_nodes_form_one_group() {
    let paths: Vec<PathBuf> = NODES.iter().map(|node| deploy(&format!("two-site/{node}.toml"))).collect();
    let configs: Vec<Config> = paths.iter().map(|path| load(path)).collect();

    let mut names = HashSet::new();
    let mut vantages = HashSet::new();
    for ((node, path), config) in NODES.iter().zip(&paths).zip(&configs) {
        let cluster =
            config.cluster.as_ref().unwrap_or_else(|| panic!("{} has no [cluster]", path.display()));
        // The systemd instance name picks the file: switchback@NODE reads NODE.toml.
        assert_eq!(&cluster.node, node, "{}: cluster.node must be the file's name", path.display());
        assert!(names.insert(cluster.node.clone()), "{}: node `{}` twice", path.display(), cluster.node);
        assert!(
            vantages.insert(cluster.vantage.clone()),
            "{}: vantage `{}` twice: each instance probes from its own place",
            path.display(),
            cluster.vantage
        );
        assert_eq!(cluster.quorum, 2, "{}: cluster.quorum", path.display());
        assert_eq!(
            cluster.lease,
            configs[0].cluster.as_ref().unwrap().lease,
            "{}: cluster.lease",
            path.display()
        );
        assert!(
            config.store.url.expose_secret().starts_with("postgres://"),
            "{}: a group needs a PostgreSQL store",
            path.display()
        );
        // No secrets inline: tokens come from the env file, the store password from PGPASSFILE.
        let parsed = Config::parse(&read(path)).unwrap();
        assert!(
            parsed.server.admin_token.is_none(),
            "{}: admin_token belongs in the env file",
            path.display()
        );
        assert!(parsed.server.read_token.is_none(), "{}: read_token is a secret", path.display());
        let store = url::Url::parse(parsed.store.url.expose_secret()).unwrap();
        assert!(store.password().is_none(), "{}: the store password belongs in PGPASSFILE", path.display());
    }
    assert_eq!(
        vantages,
        HashSet::from(["chicago", "virginia", "witness"].map(String::from)),
        "one instance in each site and one at the witness location"
    );

    let first = &configs[0];
    for (path, config) in paths.iter().zip(&configs).skip(1) {
        let at = path.display();
        assert_eq!(config.store.url.expose_secret(), first.store.url.expose_secret(), "{at}: store.url");
        assert_eq!(config.server.public_url, first.server.public_url, "{at}: server.public_url");
        // Debug hides the database URLs (secrets), so they are compared on their own.
        assert_eq!(format!("{:?}", config.sites), format!("{:?}", first.sites), "{at}: [[sites]]");
        for (site, first_site) in config.sites.iter().zip(&first.sites) {
            assert_eq!(
                site.database.url.expose_secret(),
                first_site.database.url.expose_secret(),
                "{at}: sites.database.url of {}",
                site.name
            );
        }
        assert_eq!(format!("{:?}", config.monitor), format!("{:?}", first.monitor), "{at}: [monitor]");
        assert_eq!(format!("{:?}", config.phones), format!("{:?}", first.phones), "{at}: [phones]");
        assert_eq!(
            format!("{:?}", config.provisioning),
            format!("{:?}", first.provisioning),
            "{at}: [provisioning]"
        );
    }

    // Stronger still: everything from [server] on is the same text in all three files,
    // so only the header and [cluster] may differ.
    let tails: Vec<String> = paths
        .iter()
        .map(|path| {
            let text = read(path);
            let start = text.find("\n[server]").unwrap_or_else(|| panic!("{}: no [server]", path.display()));
            text[start..].to_owned()
        })
        .collect();
    for (path, tail) in paths.iter().zip(&tails).skip(1) {
        assert!(*tail == tails[0], "{}: differs from {} after [cluster]", path.display(), paths[0].display());
    }

    // The phones poll the load balancer of haproxy.cfg, which listens on port 80.
    let public = &first.server.public_url;
    assert_eq!(public.port_or_known_default(), Some(80), "public_url must be the balancer's port 80");
    let haproxy = read(&deploy("two-site/haproxy.cfg"));
    assert!(haproxy.contains("bind :80"), "haproxy.cfg listens on port 80");
    for config in &configs {
        let port = config.server.listen.port();
        assert!(
            haproxy.contains(&format!(".example.net:{port}")),
            "haproxy.cfg reaches the instances on {port}"
        );
    }
}

/// `haproxy -c`: exit 0 and no warning but the expected one about example host names
/// that do not resolve here.
fn check_haproxy(haproxy: &Path, file: &Path) -> anyhow::Result<()> {
    let out = Command::new(haproxy).arg("-c").arg("-f").arg(file).output().context("running haproxy -c")?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("haproxy -c -f {} failed ({}):\n{text}", file.display(), out.status);
    }
    let problems: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("[WARNING]") || line.contains("[ALERT]"))
        .filter(|line| !line.contains("could not resolve address"))
        .collect();
    if !problems.is_empty() {
        bail!("haproxy -c -f {} warns:\n{}", file.display(), problems.join("\n"));
    }
    Ok(())
}

#[test]
fn haproxy_accepts_the_two_site_files() {
    let haproxy = require!(tool("haproxy", "haproxy"), "haproxy");
    for name in ["two-site/haproxy.cfg", "two-site/haproxy-store.cfg"] {
        check_haproxy(&haproxy, &deploy(name)).unwrap();
    }
    let text = read(&deploy("two-site/haproxy.cfg"));
    assert!(text.contains("uri /readyz"), "the balancer checks /readyz");
    assert!(text.contains("http-check expect status 200"), "the balancer expects 200 from /readyz");
    for node in NODES {
        assert!(text.contains(&format!("server {node} ")), "haproxy.cfg balances over {node}");
    }
}

/// `systemd-analyze verify` on a copy of `unit` in a temporary folder, with ExecStart
/// pointed at the binary just built (verify refuses a unit whose binary is missing).
/// `instance` is the unit name to verify: the unit itself, or an instance of a template.
fn verify_unit(analyze: &Path, unit: &Path, instance: &str) -> anyhow::Result<()> {
    let text = read(unit);
    let installed = format!("ExecStart={INSTALLED_BINARY} ");
    if !text.contains(&installed) {
        bail!("{}: ExecStart does not start {INSTALLED_BINARY}", unit.display());
    }
    let built = format!("ExecStart={} ", env!("CARGO_BIN_EXE_switchback"));
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join(unit.file_name().context("unit without a file name")?);
    std::fs::write(&copy, text.replace(&installed, &built))?;

    let target = dir.path().join(instance);
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&target)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .context("running systemd-analyze verify")?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // verify exits 0 on unknown keys and unparsable values, only warning about them:
    // any line about this unit is a failure. Lines about other units are only shown.
    let dir_name = dir.path().to_string_lossy().into_owned();
    let stem = instance.split(['@', '.']).next().unwrap_or(instance);
    let (ours, others): (Vec<&str>, Vec<&str>) = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .partition(|l| l.contains(&dir_name) || l.contains(stem));
    for line in others {
        eprintln!("note: systemd-analyze verify {instance}: {line}");
    }
    if !out.status.success() || !ours.is_empty() {
        bail!("systemd-analyze verify {} ({}):\n{text}", unit.display(), out.status);
    }
    Ok(())
}

#[test]
fn systemd_accepts_both_units() {
    let analyze = require!(tool("systemd-analyze", "systemd"), "systemd-analyze");
    verify_unit(&analyze, &deploy("switchback.service"), "switchback.service").unwrap();
    let template = deploy("two-site/switchback@.service");
    for node in NODES {
        verify_unit(&analyze, &template, &format!("switchback@{node}.service")).unwrap();
    }
    let text = read(&template);
    assert!(
        text.contains("ExecStart=/usr/local/bin/switchback run --config /etc/switchback/%i.toml"),
        "the instance name picks the config file"
    );
    assert!(text.contains("EnvironmentFile=-/etc/switchback/%i.env"), "an optional env file per node");
    // The template keeps every hardening line of the single-instance unit.
    let single = read(&deploy("switchback.service"));
    let hardening = [
        "User=",
        "Group=",
        "UMask=",
        "NoNewPrivileges=",
        "ProtectSystem=",
        "ProtectHome=",
        "PrivateTmp=",
        "PrivateDevices=",
        "ProtectKernelTunables=",
        "ProtectKernelModules=",
        "ProtectControlGroups=",
        "RestrictAddressFamilies=",
        "RestrictNamespaces=",
        "LockPersonality=",
        "MemoryDenyWriteExecute=",
        "SystemCallArchitectures=",
        "AmbientCapabilities=",
        "CapabilityBoundingSet=",
        "LimitNOFILE=",
    ];
    for key in hardening {
        let line = single
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("switchback.service: no {key}"));
        assert!(text.lines().any(|l| l == line), "switchback@.service lacks `{line}` of switchback.service");
    }
}
