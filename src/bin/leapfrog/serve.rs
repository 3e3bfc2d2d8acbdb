//! `leapfrog serve`.

use std::io::Write;
use std::path::Path;

use crate::Exit;

pub fn run(dir: &Path, addr: &str) -> anyhow::Result<Exit> {
    let server = leapfrog::serve::Server::start(dir, addr)?;
    // A reader that goes away (`| head -1`) must not stop the server.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "serving {} at {}", dir.display(), server.url());
    let _ = writeln!(out, "press Ctrl-C to stop");
    let _ = out.flush();
    server.wait();
    Ok(Exit::Ok)
}
