//! File deltas on real executables: leapfrog's against bsdiff, xdelta3 and
//! `zstd --patch-from`, side by side in one run, on ruff 0.6.0 -> 0.6.1
//! (the `ruff` executables of the manylinux x86_64 wheels from PyPI,
//! downloaded once with pip into `target/bench-cache/ruff`).
//!
//! For each tool: the patch's size, the time to make it and to apply it
//! (medians of `LEAPFROG_BENCH_ROUNDS` rounds, 3 by default, the tools taken
//! in turn within each round), and the peak memory of applying it (GNU
//! time's maximum resident set). Every rebuilt file is compared with the
//! new one byte for byte. The goals (issue #14): a patch of at most
//! 1,850,000 bytes, made in at most 0.5x bsdiff's time, applied in at most
//! 1.0x bspatch's, in at most 64 MiB above the two files' sizes.
//!
//! Needs: python3 with pip (once, for the download), bsdiff, xdelta3, zstd,
//! GNU time. Run: `cargo bench --bench delta`.

#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const LEAPFROG: &str = env!("CARGO_BIN_EXE_leapfrog");
const OLD_VERSION: &str = "0.6.0";
const NEW_VERSION: &str = "0.6.1";

/// One tool: how it makes a patch and how it applies one.
struct Tool {
    name: &'static str,
    make: fn(&Path, &Path, &Path) -> Command,
    apply: fn(&Path, &Path, &Path) -> Command,
}

fn cmd(program: &str, args: &[&Path]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

fn tools() -> Vec<Tool> {
    vec![
        Tool {
            name: "leapfrog",
            make: |o, n, p| {
                let mut c = cmd(LEAPFROG, &[]);
                c.args(["delta", "make"]).args([o, n, p]);
                c
            },
            apply: |o, p, out| {
                let mut c = cmd(LEAPFROG, &[]);
                c.args(["delta", "apply"]).args([o, p, out]);
                c
            },
        },
        Tool {
            name: "bsdiff 4.3",
            make: |o, n, p| cmd("bsdiff", &[o, n, p]),
            apply: |o, p, out| cmd("bspatch", &[o, out, p]),
        },
        Tool {
            name: "xdelta3 -9",
            make: |o, n, p| {
                let mut c = cmd("xdelta3", &[]);
                c.args(["-e", "-9", "-f", "-s"]).args([o, n, p]);
                c
            },
            apply: |o, p, out| {
                let mut c = cmd("xdelta3", &[]);
                c.args(["-d", "-f", "-s"]).args([o, p, out]);
                c
            },
        },
        Tool {
            name: "zstd -19 --patch-from",
            make: |o, n, p| {
                let mut c = cmd("zstd", &[]);
                c.args(["-q", "-f", "-19", "--long=31"])
                    .arg(format!("--patch-from={}", o.display()))
                    .arg(n)
                    .arg("-o")
                    .arg(p);
                c
            },
            apply: |o, p, out| {
                let mut c = cmd("zstd", &[]);
                c.args(["-q", "-f", "-d", "--long=31"])
                    .arg(format!("--patch-from={}", o.display()))
                    .arg(p)
                    .arg("-o")
                    .arg(out);
                c
            },
        },
    ]
}

/// Runs `c` under GNU time; returns (seconds, peak resident KiB).
fn measured(what: &str, c: &mut Command) -> (f64, u64) {
    let program = c.get_program().to_owned();
    let args: Vec<_> = c.get_args().map(|a| a.to_owned()).collect();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "bench_time=%e %M"])
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{what}: /usr/bin/time: {e} (install the `time` package)"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed:\n{stderr}");
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bench_time="))
        .expect("GNU time's line");
    let mut parts = line.split_whitespace();
    let secs: f64 = parts.next().unwrap().parse().unwrap();
    let kib: u64 = parts.next().unwrap().parse().unwrap();
    (secs, kib)
}

/// The two ruff executables, downloaded once.
fn ruff_pair() -> (PathBuf, PathBuf) {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-cache/ruff");
    fs::create_dir_all(&cache).unwrap();
    let get = |version: &str| -> PathBuf {
        let exe = cache.join(format!("ruff-{version}"));
        if exe.exists() {
            return exe;
        }
        let wheels = cache.join(format!("wheel-{version}"));
        let status = Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps"])
            .args(["--only-binary=:all:", "--platform", "manylinux_2_17_x86_64"])
            .args(["--python-version", "3.12"])
            .arg(format!("ruff=={version}"))
            .arg("-d")
            .arg(&wheels)
            .status()
            .expect("python3 -m pip");
        assert!(status.success(), "downloading ruff {version} from PyPI");
        // Paths go to Python as arguments, never pasted into its source.
        let script = "import sys, zipfile, os\n\
             d, exe = sys.argv[1], sys.argv[2]\n\
             whl = [f for f in os.listdir(d) if f.endswith('.whl')][0]\n\
             z = zipfile.ZipFile(os.path.join(d, whl))\n\
             name = [n for n in z.namelist() if n.endswith('/scripts/ruff')][0]\n\
             open(exe + '.part', 'wb').write(z.read(name))\n";
        let status = Command::new("python3")
            .args(["-c", script])
            .arg(&wheels)
            .arg(&exe)
            .status()
            .unwrap();
        assert!(status.success(), "unpacking ruff {version}'s wheel");
        fs::rename(format!("{}.part", exe.display()), &exe).unwrap();
        exe
    };
    (get(OLD_VERSION), get(NEW_VERSION))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; anything else (cargo test --benches) skips.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (old, new) = ruff_pair();
    let rounds: usize = std::env::var("LEAPFROG_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let work = tempfile::tempdir().unwrap();
    let tools = tools();
    let mut make = vec![Vec::new(); tools.len()];
    let mut apply = vec![Vec::new(); tools.len()];
    let mut peak = vec![0u64; tools.len()];
    let mut size = vec![0u64; tools.len()];
    let new_bytes = fs::read(&new).unwrap();
    for round in 0..rounds {
        // A different tool first in each round.
        for k in 0..tools.len() {
            let i = (k + round) % tools.len();
            let t = &tools[i];
            let patch = work.path().join(format!("patch-{i}"));
            let out = work.path().join(format!("out-{i}"));
            let _ = fs::remove_file(&patch);
            let _ = fs::remove_file(&out);
            let (secs, _) = measured(t.name, &mut (t.make)(&old, &new, &patch));
            make[i].push(secs);
            size[i] = fs::metadata(&patch).unwrap().len();
            let (secs, kib) = measured(t.name, &mut (t.apply)(&old, &patch, &out));
            apply[i].push(secs);
            peak[i] = peak[i].max(kib);
            assert!(
                fs::read(&out).unwrap() == new_bytes,
                "{}: the rebuilt file differs from ruff {NEW_VERSION}",
                t.name
            );
        }
    }
    let old_len = fs::metadata(&old).unwrap().len();
    let files_mib = (old_len + new_bytes.len() as u64) as f64 / (1 << 20) as f64;
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "delta: ruff {OLD_VERSION} ({old_len} bytes) -> {NEW_VERSION} ({} bytes), medians of {rounds} rounds, load average {}",
        new_bytes.len(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!();
    println!("| tool | patch bytes | make | apply | apply peak memory |");
    println!("|---|---:|---:|---:|---:|");
    let medians: Vec<(f64, f64)> = (0..tools.len())
        .map(|i| (median(&mut make[i]), median(&mut apply[i])))
        .collect();
    for (i, t) in tools.iter().enumerate() {
        println!(
            "| {} | {} | {:.2} s | {:.3} s | {:.1} MiB |",
            t.name,
            size[i],
            medians[i].0,
            medians[i].1,
            peak[i] as f64 / 1024.0
        );
    }
    let (lf, bs) = (0, 1);
    println!();
    println!(
        "delta: patch {} bytes (goal <= 1,850,000: {})",
        size[lf],
        verdict(size[lf] <= 1_850_000)
    );
    let make_ratio = medians[lf].0 / medians[bs].0;
    println!(
        "delta: make {make_ratio:.2}x bsdiff (goal <= 0.5x: {})",
        verdict(make_ratio <= 0.5)
    );
    let apply_ratio = medians[lf].1 / medians[bs].1;
    println!(
        "delta: apply {apply_ratio:.2}x bspatch (goal <= 1.0x: {})",
        verdict(apply_ratio <= 1.0)
    );
    let peak_mib = peak[lf] as f64 / 1024.0;
    println!(
        "delta: apply peak {peak_mib:.1} MiB; the two files are {files_mib:.1} MiB (goal <= 64 MiB above them: {})",
        verdict(peak_mib <= files_mib + 64.0)
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}
