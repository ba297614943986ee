//! Makes a depot with a large synthetic build 1 and its next build 2 (5 % changed), for
//! benchmarks: `synthetic_depot DIR TOTAL_BYTES [FILES]`. Prints how long each step took.

use std::time::Instant;

use left4me_steamcmd_standin::{Depot, next_build, synthetic_tree};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(total)) = (args.get(1), args.get(2).and_then(|t| t.parse().ok())) else {
        eprintln!("usage: synthetic_depot DIR TOTAL_BYTES [FILES]");
        std::process::exit(2);
    };
    let files = args.get(3).and_then(|f| f.parse().ok()).unwrap_or(2000);
    let depot = Depot::create(std::path::Path::new(dir))?;
    let started = Instant::now();
    let a = synthetic_tree(total, files, 1);
    depot.add_build("public", 1, &a)?;
    println!(
        "build 1: {total} bytes in {files} files, {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let b = next_build(&a, 0.05, 2);
    depot.add_build("staged", 2, &b)?;
    println!("build 2 (branch staged): {:?}", started.elapsed());
    Ok(())
}
