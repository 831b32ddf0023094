//! Finding and deleting old files under one folder without ever leaving it.
//!
//! Work is split in two passes: [`scan`] lists what would go (so progress has a total), then
//! [`delete`] removes it. Symbolic links are never followed: a link is an entry like a file and
//! only the link itself may be removed, so a link pointing elsewhere cannot lead the sweep out
//! of its folder.

use stask_plugin_api::TaskError;
use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A file (or link) chosen for deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub path: PathBuf,
    pub size: u64,
}

/// What a scan of one folder found.
#[derive(Debug, Default)]
pub struct Plan {
    /// Files to delete.
    pub files: Vec<Candidate>,
    /// Every subfolder, parents before their children.
    pub dirs: Vec<PathBuf>,
    /// Entries that could not be read (permissions, races); the sweep goes on without them.
    pub warnings: Vec<String>,
}

/// Which subfolders to remove after the files are gone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prune {
    /// Only folders this sweep emptied: a folder that was already empty may belong to a task
    /// that just started (the host creates output folders before the worker writes to them).
    Emptied,
    /// Every subfolder (emptying a cache).
    All,
}

/// How a folder root looks before sweeping it.
#[derive(Debug, PartialEq)]
pub enum Root {
    Missing,
    /// A link or a file where a folder was expected: not swept, as following it could reach
    /// anywhere.
    NotAFolder,
    Folder,
}

pub fn root_kind(root: &Path) -> io::Result<Root> {
    match fs::symlink_metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(Root::Folder),
        Ok(_) => Ok(Root::NotAFolder),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Root::Missing),
        Err(e) => Err(e),
    }
}

/// Whether an entry counts as old: modified before `cutoff` (every entry when `None`).
fn is_old(meta: &Metadata, cutoff: Option<SystemTime>) -> bool {
    match cutoff {
        None => true,
        Some(cutoff) => meta.modified().is_ok_and(|modified| modified < cutoff),
    }
}

/// Lists the files under `root` (not `root` itself) modified before `cutoff`, and every
/// subfolder. `check` runs once per folder so a long scan can be cancelled.
pub fn scan(
    root: &Path,
    cutoff: Option<SystemTime>,
    check: &mut dyn FnMut() -> Result<(), TaskError>,
) -> Result<Plan, TaskError> {
    let mut plan = Plan::default();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        check()?;
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                plan.warnings
                    .push(format!("cannot list {}: {e}", dir.display()));
                continue;
            }
        };
        for entry in entries {
            // DirEntry::metadata does not follow links.
            let (path, meta) = match entry.and_then(|e| Ok((e.path(), e.metadata()?))) {
                Ok(found) => found,
                Err(e) => {
                    plan.warnings
                        .push(format!("cannot read an entry of {}: {e}", dir.display()));
                    continue;
                }
            };
            if meta.is_dir() {
                plan.dirs.push(path.clone());
                pending.push(path);
            } else if is_old(&meta, cutoff) {
                plan.files.push(Candidate {
                    path,
                    size: meta.len(),
                });
            }
        }
    }
    Ok(plan)
}

/// What a sweep removed.
#[derive(Debug, Default, PartialEq)]
pub struct Totals {
    pub files_deleted: u64,
    pub bytes_freed: u64,
}

/// Deletes the planned files, then the subfolders `prune` selects. `step` runs before each
/// file with the number of files handled so far (for progress and cancellation). Files that
/// changed since the scan (now a folder, or modified again) are left alone.
pub fn delete(
    plan: &Plan,
    cutoff: Option<SystemTime>,
    prune: Prune,
    warnings: &mut Vec<String>,
    step: &mut dyn FnMut(u64) -> Result<(), TaskError>,
) -> Result<Totals, TaskError> {
    let mut totals = Totals::default();
    let mut touched: HashSet<PathBuf> = HashSet::new();
    for (done, file) in plan.files.iter().enumerate() {
        step(done as u64)?;
        let still_old = fs::symlink_metadata(&file.path)
            .is_ok_and(|meta| !meta.is_dir() && is_old(&meta, cutoff));
        if !still_old {
            continue;
        }
        match fs::remove_file(&file.path) {
            Ok(()) => {
                totals.files_deleted += 1;
                totals.bytes_freed += file.size;
                if let Some(parent) = file.path.parent() {
                    touched.insert(parent.to_path_buf());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => warnings.push(format!("cannot delete {}: {e}", file.path.display())),
        }
    }
    // Children come after their parents in `dirs`, so walking it backwards empties bottom-up.
    // remove_dir only removes empty folders, which is exactly the check needed.
    for dir in plan.dirs.iter().rev() {
        if prune == Prune::Emptied && !touched.contains(dir) {
            continue;
        }
        if fs::remove_dir(dir).is_ok() {
            if let Some(parent) = dir.parent() {
                touched.insert(parent.to_path_buf());
            }
        }
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::time::Duration;

    const DAY: Duration = Duration::from_secs(86_400);

    fn write(path: &Path, content: &str, age: Duration) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    fn sweep(root: &Path, cutoff: Option<SystemTime>, prune: Prune) -> Totals {
        let plan = scan(root, cutoff, &mut || Ok(())).unwrap();
        let mut warnings = Vec::new();
        let totals = delete(&plan, cutoff, prune, &mut warnings, &mut |_| Ok(())).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        totals
    }

    #[test]
    fn deletes_old_files_and_the_folders_it_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("results");
        write(&root.join("1/old.csv"), "12345", 40 * DAY);
        write(&root.join("2/old.txt"), "1", 40 * DAY);
        write(&root.join("2/new.txt"), "1", DAY);
        write(&root.join("3/a/b/old.bin"), "123", 40 * DAY);
        fs::create_dir_all(root.join("4-running")).unwrap();

        let cutoff = SystemTime::now() - 30 * DAY;
        let totals = sweep(&root, Some(cutoff), Prune::Emptied);
        assert_eq!(
            totals,
            Totals {
                files_deleted: 3,
                bytes_freed: 9
            }
        );
        assert!(!root.join("1").exists());
        assert!(root.join("2/new.txt").exists());
        assert!(!root.join("3").exists(), "nested emptied folders go too");
        assert!(
            root.join("4-running").exists(),
            "untouched empty folders stay"
        );
        assert!(root.exists(), "the root itself stays");
    }

    #[test]
    fn links_are_removed_as_links_and_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        write(&outside.join("precious.txt"), "keep", 40 * DAY);
        let root = dir.path().join("uploads");
        fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link-to-dir")).unwrap();
        std::os::unix::fs::symlink(outside.join("precious.txt"), root.join("link-to-file"))
            .unwrap();

        let plan = scan(&root, None, &mut || Ok(())).unwrap();
        assert!(plan.dirs.is_empty(), "a link to a folder is not descended");
        sweep(&root, None, Prune::All);
        assert!(outside.join("precious.txt").exists());
        assert!(fs::read_dir(&root).unwrap().next().is_none());
    }

    #[test]
    fn prune_all_empties_a_cache_completely() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        write(&cache.join("x/y/z.json"), "{}", Duration::ZERO);
        fs::create_dir_all(cache.join("empty/deeper")).unwrap();
        let totals = sweep(&cache, None, Prune::All);
        assert_eq!(totals.files_deleted, 1);
        assert!(cache.exists());
        assert!(fs::read_dir(&cache).unwrap().next().is_none());
    }

    #[test]
    fn roots_that_are_links_are_not_swept() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        assert_eq!(root_kind(&real).unwrap(), Root::Folder);
        assert_eq!(
            root_kind(&dir.path().join("link")).unwrap(),
            Root::NotAFolder
        );
        assert_eq!(root_kind(&dir.path().join("none")).unwrap(), Root::Missing);
    }

    #[test]
    fn cancellation_stops_the_sweep() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("a"), "", 40 * DAY);
        write(&dir.path().join("b"), "", 40 * DAY);
        let plan = scan(dir.path(), None, &mut || Ok(())).unwrap();
        let mut warnings = Vec::new();
        let result = delete(&plan, None, Prune::All, &mut warnings, &mut |done| {
            if done == 1 {
                Err(TaskError::cancelled())
            } else {
                Ok(())
            }
        });
        assert!(result.is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
