//! `leapfrog serve`.

use std::path::Path;

use crate::Exit;

pub fn run(dir: &Path, addr: &str) -> anyhow::Result<Exit> {
    let server = leapfrog::serve::Server::start(dir, addr)?;
    println!("serving {} at {}", dir.display(), server.url());
    println!("press Ctrl-C to stop");
    server.wait();
    Ok(Exit::Ok)
}
