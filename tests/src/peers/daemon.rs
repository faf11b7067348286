//! A server process owned by a test: started in its own process group with its output in a
//! log file, killed with all its children when dropped.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use rustix::process::{kill_process_group, Pid, Signal};
use tempfile::TempDir;

#[derive(Debug)]
pub(crate) struct Daemon {
    child: Child,
    log: PathBuf,
    /// Config, pid and runtime files; removed after the process is gone.
    _dir: TempDir,
}

impl Daemon {
    /// Finds `program` in the usual places (`$PATH` may lack the sbin folders).
    pub(crate) fn locate(program: &str) -> anyhow::Result<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from))
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
            .with_context(|| format!("{program} is not installed (see .ci/install-peers)"))
    }

    /// Spawns `command` (its working folder set to `dir`), with stdout and stderr in `dir/peer.log`.
    pub(crate) fn spawn(mut command: Command, dir: TempDir) -> anyhow::Result<Self> {
        let log = dir.path().join("peer.log");
        let out = File::create(&log).context("creating the peer log")?;
        let err = out.try_clone()?;
        // Its own group, so that Drop kills the workers a server forks, not only the parent.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?;
        Ok(Self { child, log, _dir: dir })
    }

    /// Whether the process has exited already (a failed start).
    pub(crate) fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// The end of the log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw) {
            // The group may be gone already (a failed start); nothing to do then.
            let _ = kill_process_group(pid, Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
