use std::process::ExitCode;

use clap::Parser as _;

// The translation and the webhook allocate many small objects; mimalloc frees them in a
// fraction of glibc's time (see the `translate` benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    fidomesh::cli::run(fidomesh::cli::Cli::parse())
}
