//! What an install remembers between checks: the newest signed manifest it
//! accepted (its serial and hash, against replays of older ones) and the
//! keys a signed manifest announced for rotation.
//!
//! Kept in `<install>/.leapfrog-state.json`, a file no release may ship, so
//! it survives updates and rollbacks as the user's files do.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Error, Result};

/// The state file's name in the install dir.
pub const STATE_NAME: &str = crate::layout::STATE;
const STATE_FORMAT: u32 = 1;

/// The remembered state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Always 1.
    pub format: u32,
    /// The highest manifest serial accepted.
    pub serial: Option<u64>,
    /// The sha256 of the manifest accepted with that serial.
    pub manifest_sha256: Option<String>,
    /// Public keys (base64) announced by trusted manifests through `next_key`.
    #[serde(default)]
    pub next_keys: Vec<String>,
}

impl State {
    /// The state file of an install dir.
    pub fn path_in(install_dir: &Path) -> PathBuf {
        install_dir.join(STATE_NAME)
    }

    /// Reads the state; an absent file is the empty state. A damaged one is
    /// an error, never silently forgotten (that would allow a replay).
    pub fn read(install_dir: &Path) -> Result<State> {
        let path = State::path_in(install_dir);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    format: STATE_FORMAT,
                    ..State::default()
                })
            }
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        let state: State = serde_json::from_slice(&text).map_err(|e| {
            Error::Settings(format!(
                "{} is damaged ({e}); delete it to trust the next signed manifest afresh",
                path.display()
            ))
        })?;
        if state.format != STATE_FORMAT {
            return Err(Error::Settings(format!(
                "{} has format {}, not {STATE_FORMAT}",
                path.display(),
                state.format
            )));
        }
        Ok(state)
    }

    /// Writes the state atomically.
    pub fn write(&self, install_dir: &Path) -> Result<()> {
        let mut text = serde_json::to_vec_pretty(self).expect("state serialises");
        text.push(b'\n');
        crate::os::write_atomic(&State::path_in(install_dir), &text)
    }
}
