//! One integration test binary, a module per topic. Every test runs in its
//! own temp dir, talks to nothing but loopback, and runs the real `leapfrog`
//! binary (installed as the demo app where an app is needed).

#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

mod util;

mod airtight;
mod archive;
mod attack;
mod cli;
#[cfg(feature = "failpoints")]
mod crash;
mod dialog;
mod front;
mod hosts;
mod manifest;
mod notes;
mod places;
#[cfg(all(feature = "failpoints", target_os = "linux"))]
mod powercut;
mod rollout;
mod scale;
mod servers;
mod signing;
#[cfg(target_os = "linux")]
mod syscall;
mod trial;
mod update;
