//! `kptr-model`: see `kptr-model --help`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = shim_std::cli::Cli::parse();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    shim_std::cli::main_with(cli, &mut out)
}
