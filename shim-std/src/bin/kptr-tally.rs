//! Adds up a suite's allocator tally file and fails unless it is clean.
//!
//! `kptr-tally FILE [PROGRAM...]`: every PROGRAM must have reported.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next() else {
        eprintln!("usage: kptr-tally FILE [PROGRAM...]");
        return ExitCode::from(2);
    };
    let expect: Vec<String> = args.collect();
    let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
    match shim_std::tally::check_file(std::path::Path::new(&file), &expect) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
