//! Writing a generation to a folder (`render.dir`) for another web or TFTP server.
//!
//! Layout: `yealink/{mac}.cfg`, `yealink/y0000000000{xx}.cfg` for each of
//! [`YEALINK_MODEL_CODES`], `linksys/spa{mac}.xml`, and `manifest.json`, written last,
//! naming the generation the folder holds. Each file is replaced atomically (temporary
//! file in the same folder, flushed to disk, renamed; then the folder is fsynced) and only
//! when its bytes changed, so a phone that compares MD5s, or a server that caches by mtime,
//! sees no change where there is none. On Linux one `syncfs` flushes every temporary file
//! before the renames instead of one fsync each: a failover rewrites every phone's file,
//! and 100,000 fsyncs take minutes where one `syncfs` takes a second.
//! Files are created like any other (mode 0666 less the umask): restrict the folder itself.
//!
//! Only files this module would write are ever removed: a phone file of a phone no longer
//! in the generation, and our own temporary files (`.switchback-*.tmp`) left by a crash.
//! One writer per folder at a time.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::generation::{Generation, PhoneFile, RenderError};
use crate::names::{FileName, YEALINK_MODEL_CODES};
use crate::phone::Vendor;
use crate::sites::ActiveSites;

/// The manifest's name within the folder.
pub const MANIFEST: &str = "manifest.json";

const TEMP_PREFIX: &str = ".switchback-";
const TEMP_SUFFIX: &str = ".tmp";

/// What [`write_generation`] did to the folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteReport {
    /// Files created or replaced because their bytes changed.
    pub written: usize,
    /// Files whose bytes were already right, left untouched.
    pub unchanged: usize,
    /// Files of phones no longer in the generation.
    pub removed: usize,
}

/// `manifest.json`: which generation the folder holds.
#[derive(Debug, Serialize)]
struct Manifest<'a> {
    generation: u64,
    sites: &'a ActiveSites,
    files: usize,
}

/// Brings `dir` to `generation`. Blocking file I/O, spread over rayon's threads: call it
/// from a blocking context.
pub fn write_generation(dir: &Path, generation: &Generation) -> Result<WriteReport, RenderError> {
    let mut files: Vec<(FileName, &PhoneFile)> = generation.phone_files().collect();
    let common = generation.yealink_common();
    files.extend(YEALINK_MODEL_CODES.iter().map(|code| (FileName::YealinkCommon(*code), common)));

    for vendor in Vendor::ALL {
        let folder = dir.join(vendor.as_str());
        fs::create_dir_all(&folder).map_err(io_error(&folder))?;
    }
    let staged: Vec<Option<Staged>> = files
        .par_iter()
        .map(|(name, file)| stage_if_changed(path_of(dir, *name), file.bytes()))
        .collect::<Result<_, _>>()?;
    let staged: Vec<Staged> = staged.into_iter().flatten().collect();
    let mut report = WriteReport { written: staged.len(), unchanged: files.len() - staged.len(), removed: 0 };
    if !staged.is_empty() {
        flush_filesystem(dir)?;
    }
    staged.into_par_iter().try_for_each(Staged::rename)?;

    for vendor in Vendor::ALL {
        let folder = dir.join(vendor.as_str());
        report.removed += remove_stale(&folder, vendor, generation)?;
        sync_dir(&folder)?;
    }

    let manifest =
        Manifest { generation: generation.number(), sites: generation.sites(), files: files.len() };
    let mut json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| RenderError::Io { path: dir.join(MANIFEST), source: e.into() })?;
    json.push(b'\n');
    write_atomically(&dir.join(MANIFEST), &json)?;
    sync_dir(dir)?;
    Ok(report)
}

fn path_of(dir: &Path, name: FileName) -> PathBuf {
    dir.join(name.vendor().as_str()).join(name.file_name())
}

/// A file's new bytes in a temporary file beside it, waiting to be renamed over it.
struct Staged {
    temp: tempfile::TempPath,
    path: PathBuf,
}

impl Staged {
    fn rename(self) -> Result<(), RenderError> {
        let path = self.path;
        self.temp.persist(&path).map_err(|err| io_error(&path)(err.error))
    }
}

/// Stages `bytes` for `path` unless it already holds exactly them.
fn stage_if_changed(path: PathBuf, bytes: &[u8]) -> Result<Option<Staged>, RenderError> {
    match fs::read(&path) {
        Ok(existing) if existing == bytes => return Ok(None),
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_error(&path)(err)),
    }
    // Without `syncfs`, each file is flushed on its own before it may be renamed.
    let temp = write_temp(&path, bytes, !cfg!(target_os = "linux"))?;
    Ok(Some(Staged { temp, path }))
}

/// Writes `bytes` to a new temporary file in `path`'s folder and closes it (a folder of
/// 100,000 phones would otherwise run out of file descriptors).
fn write_temp(path: &Path, bytes: &[u8], fsync: bool) -> Result<tempfile::TempPath, RenderError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut temp = builder.tempfile_in(folder).map_err(io_error(folder))?;
    temp.write_all(bytes).map_err(io_error(temp.path()))?;
    if fsync {
        temp.as_file().sync_all().map_err(io_error(temp.path()))?;
    }
    Ok(temp.into_temp_path())
}

/// Temporary file, fsync, rename: for the manifest, a single file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RenderError> {
    let temp = write_temp(path, bytes, true)?;
    Staged { temp, path: path.to_owned() }.rename()
}

/// Puts every staged file's bytes on disk before any is renamed into place.
#[cfg(target_os = "linux")]
fn flush_filesystem(dir: &Path) -> Result<(), RenderError> {
    let folder = fs::File::open(dir).map_err(io_error(dir))?;
    rustix::fs::syncfs(&folder).map_err(|errno| io_error(dir)(errno.into()))
}

/// Elsewhere each staged file was fsynced as it was written.
#[cfg(not(target_os = "linux"))]
fn flush_filesystem(_dir: &Path) -> Result<(), RenderError> {
    Ok(())
}

/// Removes this module's files that the generation no longer has; returns how many
/// phone files went (leftover temporary files are not counted).
fn remove_stale(folder: &Path, vendor: Vendor, generation: &Generation) -> Result<usize, RenderError> {
    let mut removed = 0;
    for entry in fs::read_dir(folder).map_err(io_error(folder))? {
        let entry = entry.map_err(io_error(folder))?;
        let os_name = entry.file_name();
        let Some(name) = os_name.to_str() else { continue };
        let stale_temp = name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX);
        let stale_phone = match FileName::parse(vendor.as_str(), name) {
            // Only the exact spelling we write is ours; `0015651234AB.cfg` is someone else's.
            Some(file @ (FileName::YealinkPhone(_) | FileName::LinksysPhone(_))) => {
                file.file_name() == name && generation.get(file).is_none()
            }
            Some(FileName::YealinkCommon(_)) | None => false,
        };
        if stale_temp || stale_phone {
            let path = entry.path();
            fs::remove_file(&path).map_err(io_error(&path))?;
            removed += usize::from(stale_phone);
        }
    }
    Ok(removed)
}

/// Makes the renames in a folder durable.
fn sync_dir(folder: &Path) -> Result<(), RenderError> {
    fs::File::open(folder).and_then(|dir| dir.sync_all()).map_err(io_error(folder))
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> RenderError + '_ {
    move |source| RenderError::Io { path: path.to_owned(), source }
}

#[cfg(test)]
mod tests;
