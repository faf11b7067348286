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
//! Phone files hold SIP and provisioning passwords, so every file is written owner-only
//! (0600) and folders are created 0700; a file already there with wider permissions is
//! narrowed to 0600 even when its bytes are right. A server that reads the folder must run
//! as the same user (or be given access by the operator, say with an ACL).
//!
//! Only files this module would write are ever removed: a phone file of a phone no longer
//! in the generation, and our own temporary files (`.switchback-*.tmp`) left by a crash.
//! One writer per folder at a time.

use std::fs;
use std::io::{self, Read, Write};
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

/// Every file written: owner read and write, nothing for anyone else.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;
/// Every folder created.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;

/// What [`write_generation`] did to the folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteReport {
    /// Files created or replaced because their bytes changed.
    pub written: usize,
    /// Files whose bytes were already right, left untouched.
    pub unchanged: usize,
    /// Files of phones no longer in the generation.
    pub removed: usize,
    /// Of the `unchanged` files, those whose permissions were wider than 0600 and were
    /// narrowed to it.
    pub tightened: usize,
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
        create_dir(&dir.join(vendor.as_str()))?;
    }
    let stages: Vec<Stage> = files
        .par_iter()
        .map(|(name, file)| stage_if_changed(path_of(dir, *name), file.bytes()))
        .collect::<Result<_, _>>()?;
    let mut report = WriteReport::default();
    let mut staged = Vec::new();
    for stage in stages {
        match stage {
            Stage::Changed(file) => staged.push(file),
            Stage::Unchanged { tightened } => {
                report.unchanged += 1;
                report.tightened += usize::from(tightened);
            }
        }
    }
    report.written = staged.len();
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

/// What one file needs.
enum Stage {
    /// New bytes, staged beside the file.
    Changed(Staged),
    /// The file already holds the bytes; `tightened`: its permissions were narrowed.
    Unchanged { tightened: bool },
}

/// Stages `bytes` for `path` unless it already holds exactly them, in which case only
/// its permissions may need narrowing.
fn stage_if_changed(path: PathBuf, bytes: &[u8]) -> Result<Stage, RenderError> {
    match fs::File::open(&path) {
        Ok(mut file) => {
            let mut existing = Vec::with_capacity(bytes.len());
            file.read_to_end(&mut existing).map_err(io_error(&path))?;
            if existing == bytes {
                return Ok(Stage::Unchanged { tightened: owner_only(&file, &path)? });
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_error(&path)(err)),
    }
    // Without `syncfs`, each file is flushed on its own before it may be renamed.
    let temp = write_temp(&path, bytes, !cfg!(target_os = "linux"))?;
    Ok(Stage::Changed(Staged { temp, path }))
}

/// Narrows an open file's permissions to 0600 when they allow more; says whether it did.
#[cfg(unix)]
fn owner_only(file: &fs::File, path: &Path) -> Result<bool, RenderError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata().map_err(io_error(path))?.permissions().mode() & 0o7777;
    if mode & !FILE_MODE == 0 {
        return Ok(false);
    }
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE)).map_err(io_error(path))?;
    Ok(true)
}

#[cfg(not(unix))]
fn owner_only(_file: &fs::File, _path: &Path) -> Result<bool, RenderError> {
    Ok(false)
}

/// Creates `folder` and any missing parent, each 0700.
fn create_dir(folder: &Path) -> Result<(), RenderError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(folder).map_err(io_error(folder))
}

/// Writes `bytes` to a new temporary file in `path`'s folder and closes it (a folder of
/// 100,000 phones would otherwise run out of file descriptors).
fn write_temp(path: &Path, bytes: &[u8], fsync: bool) -> Result<tempfile::TempPath, RenderError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(FILE_MODE));
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
