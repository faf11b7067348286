use std::os::unix::fs::{MetadataExt, PermissionsExt};

use switchback_core::Role::{Backup, Primary};

use super::*;
use crate::fixtures::{phone, phones, settings, sites};

fn render(number: u64, sites: &ActiveSites, phones: &[crate::Phone]) -> Generation {
    Generation::render(number, sites, &settings(), phones).unwrap_or_else(|e| panic!("render: {e}"))
}

fn write(dir: &Path, generation: &Generation) -> WriteReport {
    write_generation(dir, generation).unwrap_or_else(|e| panic!("write: {e}"))
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

/// (inode, mtime in ns) of a file: both change when a file is replaced by rename.
fn identity(path: &Path) -> (u64, i64) {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.ino(), meta.mtime() * 1_000_000_000 + meta.mtime_nsec())
}

fn manifest(dir: &Path) -> serde_json::Value {
    let text = fs::read(dir.join(MANIFEST)).unwrap_or_else(|e| panic!("manifest: {e}"));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("manifest: {e}"))
}

#[test]
fn writes_every_file_and_the_manifest() {
    let dir = temp_dir();
    let generation = render(3, &sites(Primary, Primary), &phones(4));
    let report = write(dir.path(), &generation);
    let commons = YEALINK_MODEL_CODES.len();
    assert_eq!(report, WriteReport { written: 4 + commons, unchanged: 0, removed: 0, tightened: 0 });

    for (name, file) in generation.phone_files() {
        let on_disk = fs::read(dir.path().join(name.to_string())).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(on_disk, file.bytes().as_ref(), "{name}");
    }
    let common = fs::read(dir.path().join("yealink/y000000000028.cfg")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(common, generation.yealink_common().bytes().as_ref());
    assert!(dir.path().join("linksys/spa001500000001.xml").is_file());
    assert!(dir.path().join("yealink/001500000000.cfg").is_file());

    let manifest = manifest(dir.path());
    assert_eq!(manifest["generation"], 3);
    assert_eq!(manifest["files"], 4 + commons);
    assert_eq!(manifest["sites"]["sip"]["site"], "chicago");
    assert_eq!(manifest["sites"]["sip"]["transport"], "udp");
    assert_eq!(manifest["sites"]["stun"]["host"], "stun1.chi.example.net");
}

#[test]
fn unchanged_files_are_left_untouched() {
    let dir = temp_dir();
    let inventory = phones(4);
    write(dir.path(), &render(1, &sites(Primary, Primary), &inventory));
    let yealink = dir.path().join("yealink/001500000000.cfg");
    let spa = dir.path().join("linksys/spa001500000001.xml");
    let common = dir.path().join("yealink/y000000000028.cfg");
    let before = [identity(&yealink), identity(&spa), identity(&common)];

    // Same sites, new number: nothing but the manifest changes.
    let report = write(dir.path(), &render(2, &sites(Primary, Primary), &inventory));
    assert_eq!(report.written, 0);
    assert_eq!(report.unchanged, 4 + YEALINK_MODEL_CODES.len());
    assert_eq!([identity(&yealink), identity(&spa), identity(&common)], before);
    assert_eq!(manifest(dir.path())["generation"], 2);

    // The stun route moves: every phone file is replaced, the common file is not.
    let report = write(dir.path(), &render(3, &sites(Primary, Backup), &inventory));
    assert_eq!(report.written, 4);
    assert_ne!(identity(&yealink), before[0]);
    assert_ne!(identity(&spa), before[1]);
    assert_eq!(identity(&common), before[2]);
    let text = fs::read_to_string(&yealink).unwrap_or_default();
    assert!(text.contains("static.sip.nat_stun.server = stun1.va.example.net\n"), "{text}");
}

#[test]
fn files_of_departed_phones_and_leftover_temporaries_are_removed_others_kept() {
    let dir = temp_dir();
    write(dir.path(), &render(1, &sites(Primary, Primary), &phones(4)));
    let leftover = dir.path().join("yealink/.switchback-abc123.tmp");
    let operators = dir.path().join("yealink/001500000002-local.cfg");
    let uppercase = dir.path().join("yealink/0015000000FF.cfg");
    for path in [&leftover, &operators, &uppercase] {
        fs::write(path, "x").unwrap_or_else(|e| panic!("{e}"));
    }

    // Phone 0 leaves, phone 1 moves from Linksys to Yealink.
    let remaining = [
        phone(1, crate::Vendor::Yealink),
        phone(2, crate::Vendor::Yealink),
        phone(3, crate::Vendor::Linksys),
    ];
    let report = write(dir.path(), &render(2, &sites(Primary, Primary), &remaining));
    assert_eq!(report.removed, 2);
    assert_eq!(report.written, 1);
    assert!(!dir.path().join("yealink/001500000000.cfg").exists());
    assert!(!dir.path().join("linksys/spa001500000001.xml").exists());
    assert!(dir.path().join("yealink/001500000001.cfg").exists());
    assert!(!leftover.exists());
    assert!(operators.exists() && uppercase.exists(), "files that are not ours are kept");
    assert_eq!(manifest(dir.path())["files"], 3 + YEALINK_MODEL_CODES.len());
}

#[test]
fn no_temporary_files_remain() {
    let dir = temp_dir();
    write(dir.path(), &render(1, &sites(Backup, Backup), &phones(6)));
    for folder in ["", "yealink", "linksys"] {
        for entry in fs::read_dir(dir.path().join(folder)).unwrap_or_else(|e| panic!("{e}")) {
            let name = entry.map(|e| e.file_name()).unwrap_or_default();
            assert!(!name.to_string_lossy().starts_with('.'), "{folder}/{name:?}");
        }
    }
}

/// A file's or folder's permission bits.
fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("{e}"));
}

/// Every file the folder holds, below `dir`.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.is_dir() {
            files.extend(all_files(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn files_are_owner_only_and_new_folders_0700() {
    let parent = temp_dir();
    let dir = parent.path().join("render/prov");
    let mut inventory = phones(4);
    inventory[0].prov_password = Some("prov-secret".into());
    write(&dir, &render(1, &sites(Primary, Primary), &inventory));

    for folder in [parent.path().join("render"), dir.clone(), dir.join("yealink"), dir.join("linksys")] {
        assert_eq!(mode(&folder), 0o700, "{}", folder.display());
    }
    let files = all_files(&dir);
    assert_eq!(files.len(), 4 + YEALINK_MODEL_CODES.len() + 1);
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&dir.join(MANIFEST)), 0o600);

    // Replaced files (the sip route moves) are owner-only too.
    let report = write(&dir, &render(2, &sites(Backup, Primary), &inventory));
    assert_eq!(report.written, 4);
    for file in all_files(&dir) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[test]
fn wider_permissions_are_narrowed_even_when_the_bytes_are_right() {
    let dir = temp_dir();
    let inventory = phones(4);
    write(dir.path(), &render(1, &sites(Primary, Primary), &inventory));
    let yealink = dir.path().join("yealink/001500000000.cfg");
    let spa = dir.path().join("linksys/spa001500000001.xml");
    let common = dir.path().join("yealink/y000000000028.cfg");
    let untouched = dir.path().join("yealink/001500000002.cfg");
    set_mode(&yealink, 0o644);
    set_mode(&spa, 0o666);
    set_mode(&common, 0o640);
    set_mode(&untouched, 0o400); // narrower: left as it is
    let before = [identity(&yealink), identity(&spa), identity(&common)];

    let report = write(dir.path(), &render(2, &sites(Primary, Primary), &inventory));
    assert_eq!((report.written, report.tightened), (0, 3));
    assert_eq!(report.unchanged, 4 + YEALINK_MODEL_CODES.len());
    for path in [&yealink, &spa, &common] {
        assert_eq!(mode(path), 0o600, "{}", path.display());
    }
    assert_eq!(mode(&untouched), 0o400);
    // Narrowed in place: the same files, their bytes not rewritten.
    let inodes = |ids: [(u64, i64); 3]| ids.map(|(ino, _)| ino);
    assert_eq!(inodes([identity(&yealink), identity(&spa), identity(&common)]), inodes(before));

    let report = write(dir.path(), &render(3, &sites(Primary, Primary), &inventory));
    assert_eq!(report.tightened, 0);
}
