//! Small file helpers shared by the state-directory writers.

use std::io::Write;
use std::path::Path;

use super::error::EmulatorError;

/// Writes a secret (key or credential) readable only by the owner.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<(), EmulatorError> {
    let io = |source| EmulatorError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    // The mode above applies only to new files; one left by an older version keeps its own.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    file.write_all(data).map_err(io)
}

/// Writes a non-secret file.
pub(crate) fn write_public(path: &Path, data: &[u8]) -> Result<(), EmulatorError> {
    std::fs::write(path, data).map_err(|source| EmulatorError::Io {
        path: path.to_path_buf(),
        source,
    })
}
