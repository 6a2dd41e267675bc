//! Files lastmile keeps request data in (the decision trace, the approvals store) are
//! readable by its own user only: they hold who acted, request fields and whole parked
//! requests. A new file is created 0600; a regular file that already exists with group or
//! other bits set is tightened to the owner's bits alone (never loosened) and a warning
//! says so: refusing to start over a file an operator made by hand helps no one, and
//! leaving it readable keeps the leak. A file lastmile may not chmod (another user's)
//! stops start-up rather than be written to as it is.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Owner read and write: the mode of every file lastmile creates.
#[cfg(unix)]
const PRIVATE: u32 = 0o600;

/// Opens `path` for appending, creating it private; an existing file is tightened.
pub fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE);
    let file = options.open(path)?;
    tighten(&file, path)?;
    Ok(file)
}

/// Creates `path` private if it does not exist, and tightens it if it does, without
/// writing to it: SQLite then opens a file whose mode is already right (and gives its
/// `-wal`, `-shm` and `-journal` files the same mode).
pub fn ensure(path: &Path) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE);
    match options.open(path) {
        Ok(file) => tighten(&file, path),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tighten_existing(path),
        Err(e) => Err(e),
    }
}

/// Tightens `path` if it exists; a missing file is fine (it will be created private).
pub fn tighten_existing(path: &Path) -> io::Result<()> {
    match File::open(path) {
        Ok(file) => tighten(&file, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Clears the group and other bits of an open regular file. Works on the open handle, so
/// the file checked is the file changed. Anything else (a FIFO, `/dev/stdout`, a
/// terminal) is left alone: it is not lastmile's to chmod.
fn tighten(file: &File, path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = file.metadata()?;
        let mode = metadata.permissions().mode() & 0o777;
        if metadata.is_file() && mode & 0o077 != 0 {
            let tightened = mode & 0o700;
            file.set_permissions(std::fs::Permissions::from_mode(tightened))?;
            tracing::warn!(
                file = %path.display(),
                was = format_args!("{mode:o}"),
                now = format_args!("{tightened:o}"),
                "tightened a file readable beyond lastmile's user: it holds request data"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (file, path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> io::Result<u32> {
        Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
    }

    #[test]
    fn new_files_are_owner_only() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        open_append(&a)?;
        ensure(&b)?;
        assert_eq!((mode(&a)?, mode(&b)?), (0o600, 0o600));
        Ok(())
    }

    #[test]
    fn existing_files_lose_group_and_other_bits_only() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        for (before, after) in [
            (0o644, 0o600),
            (0o400, 0o400),
            (0o755, 0o700),
            (0o600, 0o600),
        ] {
            let _ = std::fs::remove_file(&path);
            std::fs::write(&path, "kept")?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(before))?;
            ensure(&path)?;
            assert_eq!(mode(&path)?, after, "from {before:o}");
            assert_eq!(std::fs::read_to_string(&path)?, "kept");
        }
        tighten_existing(&dir.path().join("missing"))
    }

    #[test]
    fn appending_keeps_what_was_written() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("trace.jsonl");
        std::fs::write(&path, "one\n")?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        std::io::Write::write_all(&mut open_append(&path)?, b"two\n")?;
        assert_eq!(std::fs::read_to_string(&path)?, "one\ntwo\n");
        assert_eq!(mode(&path)?, 0o600);
        Ok(())
    }
}
