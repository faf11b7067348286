//! The SQLite store file holds SIP and provisioning passwords, so it is owner-only (0600).
//!
//! The file is created here, 0600, before sqlx opens it: SQLite would create it 0644
//! (less the umask). SQLite gives the `-wal` and `-shm` files it creates the main file's
//! permissions, so they follow. A file already there with wider permissions (made by an
//! older switchback, or by hand) is narrowed to 0600 at open, with one warning.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// A store's SQLite file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SqliteFile {
    pub path: PathBuf,
    /// Whether the URL lets the store create it (`mode=rwc`).
    pub create: bool,
}

/// Owner read and write, nothing for anyone else.
#[cfg(unix)]
const MODE: u32 = 0o600;

/// Refuses a file whose folder does not exist, naming the folder: SQLite would only say
/// it cannot open the file. `url` is the redacted store URL, for messages.
pub(crate) fn check_folder(file: &SqliteFile, url: &str) -> Result<(), StoreError> {
    let Some(folder) = file.path.parent().filter(|folder| !folder.as_os_str().is_empty()) else {
        return Ok(());
    };
    match fs::metadata(folder) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            Err(StoreError::NoFolder { url: url.to_owned(), folder: folder.display().to_string() })
        }
        // Anything else (a file in its place, no permission) the open reports.
        _ => Ok(()),
    }
}

/// Creates the file (when it may) and narrows it and its `-wal` and `-shm` files to 0600.
/// `url` is the redacted store URL, for messages.
pub(crate) fn secure(file: &SqliteFile, url: &str) -> Result<(), StoreError> {
    if file.path.is_dir() {
        return Err(StoreError::Connect {
            url: url.to_owned(),
            reason: format!("{} is a folder, not a database file", file.path.display()),
        });
    }
    if file.create {
        create_owner_only(&file.path).map_err(|err| StoreError::Connect {
            url: url.to_owned(),
            reason: format!("cannot create {}: {err}", file.path.display()),
        })?;
    }
    let Narrowed { narrowed, failed } = narrow_all(&file.path);
    if !narrowed.is_empty() {
        let files: Vec<String> =
            narrowed.iter().map(|(path, mode)| format!("{} ({mode:04o})", path.display())).collect();
        tracing::warn!(
            url,
            files = %files.join(", "),
            "sqlite store files were readable by others; narrowed to 0600"
        );
    }
    for (path, err) in failed {
        // Not fatal: the store still works, and refusing to start would stop failover.
        tracing::warn!(url, file = %path.display(), error = %err, "cannot narrow sqlite store file to 0600");
    }
    Ok(())
}

/// The main file and the two SQLite keeps beside it in WAL mode.
fn companions(path: &Path) -> [PathBuf; 3] {
    let with_suffix = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_owned(), with_suffix("-wal"), with_suffix("-shm")]
}

/// What [`narrow_all`] did: the files narrowed, with their former mode, and the files
/// that could not be.
#[derive(Debug, Default)]
struct Narrowed {
    narrowed: Vec<(PathBuf, u32)>,
    failed: Vec<(PathBuf, io::Error)>,
}

/// Narrows each existing file of the store.
fn narrow_all(path: &Path) -> Narrowed {
    let Narrowed { mut narrowed, mut failed } = Narrowed::default();
    for path in companions(path) {
        match narrow(&path) {
            Ok(Some(mode)) => narrowed.push((path, mode)),
            Ok(None) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => failed.push((path, err)),
        }
    }
    Narrowed { narrowed, failed }
}

#[cfg(unix)]
fn create_owner_only(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // An empty file is an empty SQLite database; `create_new` never truncates one that
    // another process (a second instance starting) created first.
    match fs::OpenOptions::new().write(true).create_new(true).mode(MODE).open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(not(unix))]
fn create_owner_only(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// Sets a file to 0600 when its permissions allow more; the former mode when it did.
#[cfg(unix)]
fn narrow(path: &Path) -> io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = fs::metadata(path)?;
    let mode = metadata.permissions().mode() & 0o7777;
    // Only files: a folder (or a device) of that name is not ours to change.
    if !metadata.is_file() || mode & !MODE == 0 {
        return Ok(None);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(MODE))?;
    Ok(Some(mode))
}

#[cfg(not(unix))]
fn narrow(_path: &Path) -> io::Result<Option<u32>> {
    Ok(None)
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_folder_in_place_of_the_file_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("switchback.db");
        fs::create_dir(&folder).unwrap();
        fs::set_permissions(&folder, fs::Permissions::from_mode(0o755)).unwrap();
        let file = SqliteFile { path: folder.clone(), create: true };
        let refused = secure(&file, "sqlite://switchback.db").unwrap_err();
        assert!(refused.to_string().contains("is a folder"), "{refused}");
        assert_eq!(mode(&folder), 0o755);
    }

    #[test]
    fn a_new_file_is_created_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        secure(&SqliteFile { path: path.clone(), create: true }, "sqlite://store.db").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);

        // Not created when the URL does not allow it, and an existing file is kept whole.
        let other = dir.path().join("other.db");
        secure(&SqliteFile { path: other.clone(), create: false }, "sqlite://other.db").unwrap();
        assert!(!other.exists());
        fs::write(&path, b"data").unwrap();
        secure(&SqliteFile { path: path.clone(), create: true }, "sqlite://store.db").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"data");
    }

    #[test]
    fn wider_files_are_narrowed_narrower_ones_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let [main, wal, shm] = companions(&path);
        for (file, mode) in [(&main, 0o644), (&wal, 0o640), (&shm, 0o400)] {
            fs::write(file, b"").unwrap();
            fs::set_permissions(file, fs::Permissions::from_mode(mode)).unwrap();
        }
        let Narrowed { narrowed, failed } = narrow_all(&path);
        assert_eq!(narrowed, vec![(main.clone(), 0o644), (wal.clone(), 0o640)]);
        assert!(failed.is_empty());
        assert_eq!((mode(&main), mode(&wal), mode(&shm)), (0o600, 0o600, 0o400));
        assert!(narrow_all(&path).narrowed.is_empty(), "nothing left to narrow");
    }

    #[test]
    fn a_missing_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/store.db");
        let file = SqliteFile { path: path.clone(), create: true };
        let err = check_folder(&file, "sqlite://missing/store.db").unwrap_err();
        let folder = dir.path().join("missing").display().to_string();
        assert!(matches!(&err, StoreError::NoFolder { folder: f, .. } if *f == folder), "{err:?}");
        let said = err.to_string();
        assert!(said.contains(&format!("the folder {folder} of the store")), "{said}");
        assert!(said.contains("StateDirectory=switchback") && said.contains("install -d"), "{said}");
        let err = secure(&file, "sqlite://missing/store.db").unwrap_err();
        assert!(err.to_string().contains("cannot create"), "{err}");
        // A folder that exists, and a bare file name (the working directory), pass.
        check_folder(&SqliteFile { path: dir.path().join("store.db"), create: true }, "x").unwrap();
        check_folder(&SqliteFile { path: "store.db".into(), create: true }, "x").unwrap();
    }
}
