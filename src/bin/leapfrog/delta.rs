//! `leapfrog delta make|apply`.

use std::time::Instant;

use crate::{DeltaAction, Exit};

pub fn run(action: DeltaAction) -> anyhow::Result<Exit> {
    let start = Instant::now();
    match action {
        DeltaAction::Make { old, new, patch } => {
            let size = leapfrog::delta::make(&old, &new, &patch)?;
            println!(
                "wrote {} ({size} bytes) in {:.2} s",
                patch.display(),
                start.elapsed().as_secs_f64()
            );
        }
        DeltaAction::Apply {
            old,
            patch,
            out,
            max_size,
        } => {
            leapfrog::delta::apply(&old, &patch, &out, max_size)?;
            println!(
                "rebuilt {} (sha256 checked) in {:.2} s",
                out.display(),
                start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(Exit::Ok)
}
