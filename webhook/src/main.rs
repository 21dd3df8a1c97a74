use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    fidomesh::cli::run(fidomesh::cli::Cli::parse())
}
