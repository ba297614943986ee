//! left4me-workshop-standin: the stand-in Steam Workshop as a program, for the benchmark and the
//! demo.
//!
//! `left4me-workshop-standin --listen ADDR [--collection-of N]` serves the standard fixture (or
//! one collection of N items) and prints its base URL on the first line, then one line per
//! collection (`collection ID: N children`), until killed.

use std::net::TcpListener;
use std::process::ExitCode;

use left4me_workshop_standin::{Fixture, serve_forever};

const USAGE: &str = "usage: left4me-workshop-standin --listen ADDR [--collection-of N]";

fn main() -> ExitCode {
    let mut listen = None;
    let mut collection_of = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(addr)) => listen = Some(addr),
            ("--collection-of", Some(n)) => match n.parse::<u64>() {
                Ok(n) if n > 0 => collection_of = Some(n),
                _ => {
                    return usage(&format!(
                        "--collection-of takes a positive number, not {n:?}"
                    ));
                }
            },
            _ => return usage(&format!("unexpected argument {arg:?}")),
        }
    }
    let Some(listen) = listen else {
        return usage("--listen ADDR is required");
    };
    let fixture = collection_of.map_or_else(Fixture::standard, Fixture::collection_of);
    let listener = match TcpListener::bind(&listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("http://{addr}"),
        Err(e) => {
            eprintln!("error: the address of {listen}: {e}");
            return ExitCode::FAILURE;
        }
    }
    for collection in fixture.collections.values() {
        println!(
            "collection {}: {} children",
            collection.id,
            collection.children.len()
        );
    }
    match serve_forever(fixture, listener) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: serving on {listen}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("left4me-workshop-standin: {problem}\n{USAGE}");
    ExitCode::from(2)
}
